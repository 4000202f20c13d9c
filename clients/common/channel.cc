#include "clients/common/channel.h"

#include <fstream>
#include <sstream>

namespace moeserve::clients {

void AddChannelFlags(CLI::App* app, ChannelOptions* o) {
  app->add_option("--api-key", o->api_key, "API key sent as `authorization: Bearer KEY`");
  app->add_option("--api-key-file", o->api_key_file, "file whose first line is the API key");
  app->add_flag("--tls", o->tls, "connect with TLS (system roots unless --tls-ca)");
  app->add_option("--tls-ca", o->tls_ca, "CA certificate (PEM) to verify the server (implies --tls)");
  app->add_option("--tls-cert", o->tls_cert, "client certificate (PEM) for mutual TLS");
  app->add_option("--tls-key", o->tls_key, "client private key (PEM) for mutual TLS");
  app->add_option("--tls-server-name", o->tls_server_name, "expected server name in its certificate");
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  *out = s.str();
  return true;
}

bool ResolveApiKey(const ChannelOptions& o, std::string* key, std::string* error) {
  *key = o.api_key;
  if (o.api_key_file.empty()) return true;
  std::string content;
  if (!ReadFile(o.api_key_file, &content)) {
    *error = "--api-key-file: cannot read " + o.api_key_file;
    return false;
  }
  *key = content.substr(0, content.find_first_of("\r\n"));
  return true;
}

std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& o, std::string* error, int index) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (o.tls || !o.tls_ca.empty() || !o.tls_cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (!o.tls_ca.empty() && !ReadFile(o.tls_ca, &ssl.pem_root_certs)) {
      *error = "--tls-ca: cannot read " + o.tls_ca;
      return nullptr;
    }
    if (o.tls_cert.empty() != o.tls_key.empty()) {
      *error = "--tls-cert and --tls-key go together";
      return nullptr;
    }
    if (!o.tls_cert.empty() &&
        (!ReadFile(o.tls_cert, &ssl.pem_cert_chain) || !ReadFile(o.tls_key, &ssl.pem_private_key))) {
      *error = "cannot read --tls-cert or --tls-key";
      return nullptr;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
  if (index >= 0) {
    // Channels with equal arguments share subchannels (one TCP connection); a local pool and a
    // distinct argument keep them apart.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("moeserve.channel_index", index);
  }
  return grpc::CreateCustomChannel(o.addr, credentials, args);
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "STATUS";
  }
}

}  // namespace moeserve::clients
