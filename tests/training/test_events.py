"""TensorBoard event files written by hand, read back by an independent implementation (tensorboardX's protos)."""
import io
import struct

import numpy as np
from PIL import Image
from tensorboardX.crc32c import crc32c as reference_crc32c
from tensorboardX.proto.event_pb2 import Event

from aejax.training import events
from aejax.training.writers import MetricWriter


def _records(path):
    """Payloads of a TFRecord file, checking both masked CRCs with tensorboardX's CRC-32C."""
    def masked(data):
        crc = reference_crc32c(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    data, payloads, at = open(path, "rb").read(), [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8:at + 12])[0] == masked(header)
        payload = data[at + 12:at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == masked(payload)
        payloads.append(payload)
        at += 16 + length
    return payloads


def test_crc32c_matches_the_reference_and_the_standard_check_value():
    assert events.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    rng = np.random.default_rng(0)
    for size in (0, 1, 7, 1000):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert events.crc32c(data) == reference_crc32c(data)


def test_scalars_and_images_read_back_as_tensorboard_events(tmp_path):
    writer = MetricWriter(str(tmp_path))
    writer.write(7, {"train/loss": 1.25, "eval/elbo": -3.5, "eval/kl_per_dim": [1.0, 2.0]})
    image = np.random.default_rng(1).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    writer.write_images(7, {"figures/samples": image, "figures/grey": image[..., :1]})
    writer.write(-1, {"train/loss": float("nan")})
    writer.close()
    (path,) = (tmp_path / "tensorboard").iterdir()
    assert "tfevents" in path.name
    parsed = [Event.FromString(payload) for payload in _records(path)]
    assert parsed[0].file_version == "brain.Event:2"
    scalars = [(e.step, v.tag, v.simple_value) for e in parsed[1:] for v in e.summary.value if v.HasField("simple_value")]
    assert scalars[:2] == [(7, "train/loss", 1.25), (7, "eval/elbo", -3.5)]  # lists are not scalars
    assert scalars[2][:2] == (-1, "train/loss") and np.isnan(scalars[2][2])
    images = {v.tag: v.image for e in parsed for v in e.summary.value if v.HasField("image")}
    rgb = images["figures/samples"]
    assert (rgb.height, rgb.width, rgb.colorspace) == (5, 9, 3)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(rgb.encoded_image_string))), image)
    grey = images["figures/grey"]
    assert grey.colorspace == 1
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(grey.encoded_image_string))), image[..., 0])
    assert all(e.wall_time > 1.6e9 for e in parsed)
