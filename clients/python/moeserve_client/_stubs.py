"""The generated moeserve.v1 modules (inference_pb2, inference_pb2_grpc).

They are generated from proto/moeserve/v1/inference.proto with grpcio-tools: at build time by
setup.py, or on import from a source checkout into moeserve_client/_generated (or
$MOESERVE_CLIENT_STUBS_DIR, which the CTest sets to the build dir; a temporary directory when the
target is read-only). In a checkout the stubs are regenerated whenever a .proto file under the
proto root is newer than them, so a proto change never leaves stale stubs behind; an installed
package (no proto root) uses the stubs it shipped with. The generated code imports itself as the
top-level package `moeserve.v1`, so its directory is put on sys.path.
"""

import importlib
import os
import sys
import tempfile

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
PACKAGE_GENERATED_DIR = os.path.join(PACKAGE_DIR, "_generated")
PROTO = "moeserve/v1/inference.proto"


def _find_proto_root():
    """The directory holding moeserve/v1/inference.proto, or None (an installed package)."""
    env = os.environ.get("MOESERVE_PROTO_DIR")
    candidates = ([env] if env else []) + [
        os.path.join(PACKAGE_DIR, "..", "..", "..", "proto"),  # source checkout
    ]
    for root in candidates:
        if os.path.isfile(os.path.join(root, PROTO)):
            return os.path.abspath(root)
    return None


def _proto_root():
    root = _find_proto_root()
    if root is None:
        raise ImportError(
            "moeserve_client: no generated stubs and no proto/moeserve/v1/inference.proto found; "
            "install the package with pip or set MOESERVE_PROTO_DIR")
    return root


def _newest_proto_mtime(root):
    newest = 0.0
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".proto"):
                newest = max(newest, os.path.getmtime(os.path.join(dirpath, f)))
    return newest


def _stubs_current(out_dir, proto_root):
    """True when out_dir holds stubs at least as new as every .proto under proto_root."""
    paths = [os.path.join(out_dir, "moeserve", "v1", n)
             for n in ("inference_pb2.py", "inference_pb2_grpc.py")]
    if not all(os.path.isfile(p) for p in paths):
        return False
    if proto_root is None:
        return True
    return min(os.path.getmtime(p) for p in paths) >= _newest_proto_mtime(proto_root)


def generate(out_dir):
    """Runs protoc (grpcio-tools) on inference.proto into out_dir."""
    try:
        from grpc_tools import protoc
    except ImportError as e:
        raise ImportError("moeserve_client: generating the stubs needs grpcio-tools "
                          "(pip install grpcio-tools)") from e
    import grpc_tools

    root = _proto_root()
    os.makedirs(out_dir, exist_ok=True)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main([
        "grpc_tools.protoc", f"-I{root}", f"-I{well_known}", f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}", os.path.join(root, PROTO)
    ])
    if rc != 0:
        raise ImportError(f"moeserve_client: protoc failed on {PROTO} ({rc})")


def _generated_dir():
    target = os.environ.get("MOESERVE_CLIENT_STUBS_DIR") or PACKAGE_GENERATED_DIR
    proto_root = _find_proto_root()
    if _stubs_current(target, proto_root):
        return target
    try:
        generate(target)
        return target
    except OSError:
        out = tempfile.mkdtemp(prefix="moeserve_client_")
        generate(out)
        return out


def load():
    """Returns (inference_pb2, inference_pb2_grpc)."""
    path = _generated_dir()
    if path not in sys.path:
        sys.path.insert(0, path)
    return (importlib.import_module("moeserve.v1.inference_pb2"),
            importlib.import_module("moeserve.v1.inference_pb2_grpc"))
