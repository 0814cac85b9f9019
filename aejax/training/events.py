"""TensorBoard event files written directly: scalars and PNG images, no TensorFlow, tensorboardX or torch.

An event file is a sequence of TFRecords (length, masked CRC-32C of the length,
payload, masked CRC-32C of the payload), each payload an ``Event`` protocol
buffer. aejax writes three kinds of ``Event``: the file version, a scalar
(``Summary.Value.simple_value``) and an image (``Summary.Value.image``, PNG
bytes). The encoding below is those few fields of TensorFlow's
``event.proto`` / ``summary.proto`` by hand, so that writing metrics imports
nothing heavy (tensorboardX imports torch whenever torch is installed).
"""
from __future__ import annotations

import io
import os
import socket
import struct
import time

import numpy as np

_CRC32C_POLY = 0x82F63B78  # Castagnoli, reflected


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_CRC32C_POLY if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tf_record(payload: bytes) -> bytes:
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc32c(length)) + payload + struct.pack("<I", masked_crc32c(payload))


# ---- protocol buffer wire format: (field number, wire type) keys, varints, length-delimited fields.

def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64 values are sent as their two's complement
    while True:
        bits, value = value & 0x7F, value >> 7
        out.append(bits | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _int_field(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _bytes_field(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


def _event(wall_time: float, step: int, field: int, body: bytes) -> bytes:
    """Event{wall_time = 1 (double), step = 2 (int64), one of file_version = 3 / summary = 5}."""
    return _key(1, 1) + struct.pack("<d", wall_time) + _int_field(2, step) + _bytes_field(field, body)


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """Summary{value = 1: Value{tag = 1, simple_value = 2 (float)}}."""
    value_message = _bytes_field(1, tag.encode()) + _key(2, 5) + struct.pack("<f", value)
    return _event(wall_time, step, 5, _bytes_field(1, value_message))


def image_event(tag: str, image: np.ndarray, step: int, wall_time: float) -> bytes:
    """Summary{value: Value{tag, image = 4: Image{height = 1, width = 2, colorspace = 3, png = 4}}} of uint8 [H, W, C]."""
    from PIL import Image
    image = np.asarray(image, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    height, width, channels = image.shape
    image_message = (_int_field(1, height) + _int_field(2, width) + _int_field(3, channels)
                     + _bytes_field(4, buffer.getvalue()))
    value_message = _bytes_field(1, tag.encode()) + _bytes_field(4, image_message)
    return _event(wall_time, step, 5, _bytes_field(1, value_message))


class EventFile:
    """One ``events.out.tfevents.*`` file in `directory`, flushed after every write (a killed run loses nothing)."""

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        now = time.time()
        self.path = os.path.join(directory, f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}")
        self._file = open(self.path, "ab")
        self._write([_event(now, 0, 3, b"brain.Event:2")])

    def _write(self, payloads: list[bytes]) -> None:
        self._file.write(b"".join(tf_record(payload) for payload in payloads))
        self._file.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        now = time.time()
        self._write([scalar_event(tag, value, step, now) for tag, value in values.items()])

    def images(self, step: int, images: dict[str, np.ndarray]) -> None:
        now = time.time()
        self._write([image_event(tag, image, step, now) for tag, image in images.items()])

    def close(self) -> None:
        self._file.close()
