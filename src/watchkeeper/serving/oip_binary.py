"""The Open Inference Protocol's binary tensor data extension, which Triton's clients use by
default: a body is a JSON header of ``Inference-Header-Content-Length`` bytes followed by the
raw tensors, in the order of the header's tensors, each ``parameters.binary_data_size`` bytes
long (numbers little-endian, row-major; ``BYTES`` as a 4-byte little-endian length and the
bytes, per element).

:func:`split_request` turns such a request into the plain JSON form :mod:`.oip` reads (each
binary tensor's ``data`` filled in); :func:`join_response` answers the outputs a request asked
for in binary (``outputs[].parameters.binary_data``, or ``parameters.binary_data_output`` for
all of them) the same way. A malformed body is an :class:`InputError` naming the tensor.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from watchkeeper.errors import InputError

HEADER = "inference-header-content-length"
EXTENSION = "binary_tensor_data"
DTYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_LENGTH = struct.Struct("<I")


def split_request(body: bytes, header_length: str) -> dict[str, Any]:
    """The request of a binary body as JSON, each binary tensor's ``data`` decoded."""
    if not header_length.strip().isdigit() or int(header_length) > len(body):
        raise InputError(
            f"Inference-Header-Content-Length {header_length!r}: expected the length in bytes "
            f"of the JSON header at the start of the body ({len(body)} bytes)"
        )
    end = int(header_length)
    try:
        request = json.loads(body[:end])
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"the inference header is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise InputError("inference request: expected a JSON object with inputs")
    inputs = request.get("inputs")
    for i, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        parameters = tensor.get("parameters") if isinstance(tensor, Mapping) else None
        if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
            continue
        name = tensor.get("name")
        size = parameters.pop("binary_data_size")
        if not isinstance(size, int) or size < 0 or end + size > len(body):
            raise InputError(
                f"inputs[{i}] {name!r}: binary_data_size {size!r} does not fit the "
                f"{len(body) - end} bytes left in the body"
            )
        tensor["data"] = _decode(body[end : end + size], tensor.get("datatype"), i, name)
        end += size
    if end != len(body):
        raise InputError(f"{len(body) - end} bytes after the binary tensors of the request")
    return request


def binary_outputs(request: Mapping[str, Any]) -> set[str] | bool:
    """The outputs the request wants in binary: a set of names, or True for all of them."""
    parameters = request.get("parameters")
    if isinstance(parameters, Mapping) and parameters.get("binary_data_output") is True:
        return True
    wanted = set()
    outputs = request.get("outputs")
    for output in outputs if isinstance(outputs, list) else []:
        if not isinstance(output, Mapping):
            continue
        parameters = output.get("parameters")
        if isinstance(parameters, Mapping) and parameters.get("binary_data") is True:
            wanted.add(str(output.get("name")))
    return wanted


def join_response(response: dict[str, Any], binary: set[str] | bool) -> tuple[bytes, int]:
    """The response with the ``binary`` outputs moved after the JSON header; the body and
    the header's length."""
    chunks = []
    for output in response["outputs"]:
        if binary is True or (isinstance(binary, set) and output["name"] in binary):
            raw = _encode(output.pop("data"), output["datatype"])
            output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(raw)}
            chunks.append(raw)
    header = json.dumps(response, separators=(",", ":")).encode()
    return header + b"".join(chunks), len(header)


def _decode(raw: bytes, datatype: Any, i: int, name: Any) -> list[Any]:
    if datatype == "BYTES":
        values: list[Any] = []
        at = 0
        while at < len(raw):
            if at + 4 > len(raw):
                raise InputError(f"inputs[{i}] {name!r}: BYTES data ends inside a length")
            (n,) = _LENGTH.unpack_from(raw, at)
            if at + 4 + n > len(raw):
                raise InputError(f"inputs[{i}] {name!r}: BYTES element longer than the data")
            try:
                text = raw[at + 4 : at + 4 + n].decode()
            except UnicodeDecodeError:
                raise InputError(f"inputs[{i}] {name!r}: BYTES element is not UTF-8") from None
            if "\x00" in text:
                raise InputError(f"inputs[{i}] {name!r}: a text contains a NUL character")
            values.append(text)
            at += 4 + n
        return values
    if datatype not in DTYPES:
        raise InputError(f"inputs[{i}] {name!r}: datatype {datatype!r} has no binary form")
    dtype = np.dtype(DTYPES[datatype])
    if len(raw) % dtype.itemsize:
        raise InputError(
            f"inputs[{i}] {name!r}: {len(raw)} bytes is not a whole number of {datatype} values"
        )
    numbers: list[Any] = np.frombuffer(raw, dtype).tolist()
    return numbers


def _encode(data: list[Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in data:
            encoded = ("" if value is None else str(value)).encode()
            parts.append(_LENGTH.pack(len(encoded)) + encoded)
        return b"".join(parts)
    return bytes(np.asarray(data, DTYPES[datatype]).tobytes())
