"""The generated moeserve.v1 modules (inference_pb2, inference_pb2_grpc).

They are generated from proto/moeserve/v1/inference.proto with grpcio-tools: at build time by
setup.py, or on first import from a source checkout (into moeserve_client/_generated, or a
temporary directory when the package directory is read-only). The generated code imports itself
as the top-level package `moeserve.v1`, so its directory is put on sys.path.
"""

import importlib
import os
import sys
import tempfile

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
PACKAGE_GENERATED_DIR = os.path.join(PACKAGE_DIR, "_generated")
PROTO = "moeserve/v1/inference.proto"


def _proto_root():
    env = os.environ.get("MOESERVE_PROTO_DIR")
    candidates = ([env] if env else []) + [
        os.path.join(PACKAGE_DIR, "..", "..", "..", "proto"),  # source checkout
    ]
    for root in candidates:
        if os.path.isfile(os.path.join(root, PROTO)):
            return os.path.abspath(root)
    raise ImportError(
        "moeserve_client: no generated stubs and no proto/moeserve/v1/inference.proto found; "
        "install the package with pip or set MOESERVE_PROTO_DIR")


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
    marker = os.path.join("moeserve", "v1", "inference_pb2_grpc.py")
    if os.path.isfile(os.path.join(PACKAGE_GENERATED_DIR, marker)):
        return PACKAGE_GENERATED_DIR
    try:
        generate(PACKAGE_GENERATED_DIR)
        return PACKAGE_GENERATED_DIR
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
