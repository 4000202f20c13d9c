#!/usr/bin/env bash
# Sourced by both pods of deploy/k8s/lws/leaderworkerset.yaml: an unprivileged sshd on port 2222
# (workers) and an ssh client config (the leader's mpirun), keyed by the moeserve-mpi-ssh Secret
# mounted at /etc/moeserve/ssh (id_ed25519, authorized_keys). Everything lives in /tmp/ssh: the
# image's filesystem stays read-only and nothing runs as root.
ssh_dir=/tmp/ssh
mkdir -p "$ssh_dir"
chmod 700 "$ssh_dir"
install -m 0600 /etc/moeserve/ssh/id_ed25519 "$ssh_dir/id_ed25519"
install -m 0600 /etc/moeserve/ssh/authorized_keys "$ssh_dir/authorized_keys"
[[ -f "$ssh_dir/host_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/host_ed25519"
cat > "$ssh_dir/sshd_config" <<CONF
Port 2222
HostKey $ssh_dir/host_ed25519
PidFile $ssh_dir/sshd.pid
AuthorizedKeysFile $ssh_dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitUserEnvironment no
StrictModes no
UsePAM no
CONF
cat > "$ssh_dir/config" <<CONF
Host *
  Port 2222
  IdentityFile $ssh_dir/id_ed25519
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
CONF
