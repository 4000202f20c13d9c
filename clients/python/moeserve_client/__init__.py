"""Python client of the moeserve gRPC server.

    from moeserve_client import Client
    with Client("127.0.0.1:50051") as c:
        for chunk in c.generate_stream("Once upon a time", max_tokens=64, temperature=0):
            print(chunk.text, end="", flush=True)
        print(c.generate("Hello", max_tokens=8).text)

Errors are grpc.RpcError with the server's status code and message.
"""

from moeserve_client.client import Client, Completion, pb2

__all__ = ["Client", "Completion", "pb2"]
