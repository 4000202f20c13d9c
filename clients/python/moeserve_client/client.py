"""Blocking and streaming calls of moeserve.v1.Inference, plus grpc.health.v1 Check."""

import dataclasses
from typing import Iterator, List, Optional, Sequence, Tuple

import grpc

from moeserve_client import _stubs

pb2, pb2_grpc = _stubs.load()

# Every field of moeserve.v1.SamplingParams, accepted as keyword arguments.
SAMPLING_FIELDS = tuple(f.name for f in pb2.SamplingParams.DESCRIPTOR.fields)

_HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


@dataclasses.dataclass
class Completion:
    """One completion of a Generate stream (index in [0, n); 0 when n = 1). usage and timings are
    the request's: prompt counted once, completion tokens summed over all n completions."""
    request_id: str
    text: str
    token_ids: List[int]
    finish_reason: str  # "stop", "length" or "abort"
    usage: "pb2.Usage"
    timings: "pb2.Timings"
    stop_string: str = ""
    logprobs: List["pb2.TokenLogprobs"] = dataclasses.field(default_factory=list)
    index: int = 0
    # With prompt_logprobs=k: one entry per prompt position 1..P-1 (completion 0 only).
    prompt_logprobs: List["pb2.TokenLogprobs"] = dataclasses.field(default_factory=list)


def _encode_health_request(service: str) -> bytes:
    data = service.encode()
    if not data:
        return b""
    length = len(data)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            break
    return b"\x0a" + bytes(varint) + data


def _decode_health_response(data: bytes) -> int:
    # HealthCheckResponse{status = 1 (varint)}; absent means UNKNOWN (0).
    if len(data) >= 2 and data[0] == 0x08:
        return data[1]
    return 0


class Client:
    """A connection to a moeserve server. Safe to share between threads (as a grpc.Channel is)."""

    def __init__(self, addr: str = "127.0.0.1:50051", *, api_key: Optional[str] = None,
                 tls: bool = False, root_certificates: Optional[bytes] = None,
                 certificate_chain: Optional[bytes] = None, private_key: Optional[bytes] = None,
                 server_name: Optional[str] = None, timeout: Optional[float] = None):
        """api_key: sent as `authorization: Bearer KEY`. tls (or any certificate): connect with
        TLS; certificate_chain + private_key: the client certificate for mutual TLS. timeout:
        default deadline in seconds of every call."""
        options = [("grpc.max_receive_message_length", 64 << 20)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls or root_certificates or certificate_chain:
            creds = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self._channel = grpc.secure_channel(addr, creds, options)
        else:
            self._channel = grpc.insecure_channel(addr, options)
        self._stub = pb2_grpc.InferenceStub(self._channel)
        self._health_check = self._channel.unary_unary(
            "/grpc.health.v1.Health/Check", request_serializer=None,
            response_deserializer=None)
        self._metadata: Tuple[Tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ())
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- Generate ------------------------------------------------------------------------------

    def request(self, prompt: Optional[str] = None, *, token_ids: Optional[Sequence[int]] = None,
                messages: Optional[Sequence[dict]] = None, priority: int = 0,
                cache_salt: str = "", request_id: str = "",
                add_special_tokens: Optional[bool] = None,
                skip_special_tokens: Optional[bool] = None,
                return_prompt_token_ids: bool = False, **sampling) -> "pb2.GenerateRequest":
        """A GenerateRequest with exactly one of prompt / token_ids / messages ({"role",
        "content"} dicts); sampling keywords are SamplingParams fields (max_tokens=...,
        temperature=..., stop=[...], logit_bias={id: bias}, ...)."""
        if sum(x is not None for x in (prompt, token_ids, messages)) != 1:
            raise ValueError("give exactly one of prompt, token_ids or messages")
        unknown = set(sampling) - set(SAMPLING_FIELDS)
        if unknown:
            raise TypeError(f"unknown sampling parameters: {sorted(unknown)}")
        req = pb2.GenerateRequest(priority=priority, cache_salt=cache_salt,
                                  request_id=request_id,
                                  return_prompt_token_ids=return_prompt_token_ids)
        if prompt is not None:
            req.text = prompt
        elif token_ids is not None:
            req.token_ids.ids.extend(token_ids)
        else:
            req.messages.messages.extend(
                pb2.ChatMessage(role=m["role"], content=m["content"]) for m in messages)
        if add_special_tokens is not None:
            req.add_special_tokens = add_special_tokens
        if skip_special_tokens is not None:
            req.skip_special_tokens = skip_special_tokens
        for name, value in sampling.items():
            if value is None:
                continue
            if name == "logit_bias":
                req.sampling.logit_bias.update(value)
            elif name in ("stop", "stop_token_ids"):
                getattr(req.sampling, name).extend(value)
            else:
                setattr(req.sampling, name, value)
        return req

    def generate_stream(self, prompt: Optional[str] = None, *, timeout: Optional[float] = None,
                        **kwargs) -> Iterator["pb2.GenerateResponse"]:
        """Yields GenerateResponse deltas as the server produces them; the last one has
        finish_reason, usage and timings. Closing the iterator early cancels the request."""
        req = self.request(prompt, **kwargs)
        call = self._stub.Generate(req, timeout=timeout or self._timeout, metadata=self._metadata)
        try:
            yield from call
        finally:
            call.cancel()

    def generate(self, prompt: Optional[str] = None, *, timeout: Optional[float] = None,
                 **kwargs) -> Completion:
        """The whole completion at once (blocking). With n > 1 use generate_all."""
        if (kwargs.get("n") or 1) > 1:
            raise ValueError("generate returns one completion; use generate_all for n > 1")
        return self.generate_all(prompt, timeout=timeout, **kwargs)[0]

    def generate_all(self, prompt: Optional[str] = None, *, timeout: Optional[float] = None,
                     **kwargs) -> List[Completion]:
        """All n completions (SamplingParams.n, default 1) at once (blocking), ordered by index.
        The stream interleaves them; responses are merged per GenerateResponse.index."""
        parts = {}  # index -> the Completion being merged
        last_response = None
        for r in self.generate_stream(prompt, timeout=timeout, **kwargs):
            c = parts.get(r.index)
            if c is None:
                c = parts[r.index] = Completion(request_id=r.request_id, text="", token_ids=[],
                                                finish_reason="", usage=r.usage,
                                                timings=r.timings, index=r.index)
            c.text += r.text
            c.token_ids.extend(r.token_ids)
            c.logprobs.extend(r.logprobs)
            c.prompt_logprobs.extend(r.prompt_logprobs)
            if r.finish_reason:
                c.finish_reason = pb2.FinishReason.Name(r.finish_reason).replace(
                    "FINISH_REASON_", "").lower()
                c.stop_string = r.stop_string
            last_response = r
        completions = [parts[i] for i in sorted(parts)]
        for c in completions:  # the request's final counts and latencies
            c.usage, c.timings = last_response.usage, last_response.timings
        return completions

    # ---- Other calls ---------------------------------------------------------------------------

    def tokenize(self, text: str, add_special_tokens: bool = True) -> List[int]:
        r = self._stub.Tokenize(pb2.TokenizeRequest(text=text,
                                                    add_special_tokens=add_special_tokens),
                                timeout=self._timeout, metadata=self._metadata)
        return list(r.token_ids)

    def detokenize(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        r = self._stub.Detokenize(
            pb2.DetokenizeRequest(token_ids=token_ids, skip_special_tokens=skip_special_tokens),
            timeout=self._timeout, metadata=self._metadata)
        return r.text

    def model_info(self) -> "pb2.ModelInfo":
        return self._stub.GetModelInfo(pb2.GetModelInfoRequest(), timeout=self._timeout,
                                       metadata=self._metadata)

    def health(self, service: str = "", timeout: float = 5.0) -> str:
        """grpc.health.v1 Check: "SERVING", "NOT_SERVING", ..."""
        raw = self._health_check(_encode_health_request(service), timeout=timeout)
        return _HEALTH_STATUS.get(_decode_health_response(raw), "UNKNOWN")
