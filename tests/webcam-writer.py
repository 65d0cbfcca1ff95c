#!/usr/bin/env python3
"""A USB webcam for the VM tests: hands the frames of a recording to a
v4l2loopback node at a steady rate, as a webcam's driver would, looping for
ever. The recording is made once, on the host (tests/webcams.rs), so the
emulated guest spends its time on edgecam rather than on drawing frames.

    webcam-writer.py DEVICE mjpeg|h264 FILE WIDTH HEIGHT FPS [TRUNCATE_EVERY]

MJPEG frames are split at their start markers; H.264 access units at their
access unit delimiters (the recording has them: x264's aud=1), and the
recording is a whole number of GOPs, so the loop restarts at a keyframe.
With TRUNCATE_EVERY, every Nth frame is cut in half, as a webcam leaves a
frame when a USB transfer is cut short.
"""

import fcntl
import os
import struct
import sys
import time

VIDIOC_S_FMT = 0xC0D05605  # _IOWR('V', 5, struct v4l2_format), 208 bytes
VIDIOC_STREAMON = 0x40045612  # _IOW('V', 18, int)
V4L2_BUF_TYPE_VIDEO_OUTPUT = 2
V4L2_FIELD_NONE = 1
FOURCC = {"mjpeg": b"MJPG", "h264": b"H264"}
START = {"mjpeg": b"\xff\xd8\xff", "h264": b"\x00\x00\x00\x01\x09"}


def set_format(fd, fourcc, width, height):
    # struct v4l2_format: __u32 type, 4 bytes of padding, then the union
    # (200 bytes) whose v4l2_pix_format is twelve __u32.
    pix = struct.pack(
        "12I", width, height, int.from_bytes(fourcc, "little"), V4L2_FIELD_NONE,
        0, width * height * 2, 0, 0, 0, 0, 0, 0,
    )
    fmt = struct.pack("I4x", V4L2_BUF_TYPE_VIDEO_OUTPUT) + pix.ljust(200, b"\0")
    fcntl.ioctl(fd, VIDIOC_S_FMT, bytearray(fmt))
    # Marks this opener as the writer (v4l2loopback 0.12 does not for
    # write() alone), so the node takes the next writer after this one.
    fcntl.ioctl(fd, VIDIOC_STREAMON, struct.pack("i", V4L2_BUF_TYPE_VIDEO_OUTPUT))


def frames(data, start):
    cuts = []
    at = data.find(start)
    while at >= 0:
        cuts.append(at)
        at = data.find(start, at + len(start))
    return [data[a:b] for a, b in zip(cuts, cuts[1:] + [len(data)])]


def main():
    device, kind, path = sys.argv[1:4]
    width, height, fps = map(int, sys.argv[4:7])
    truncate_every = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    with open(path, "rb") as recording:
        recorded = frames(recording.read(), START[kind])
    fd = os.open(device, os.O_RDWR)
    set_format(fd, FOURCC[kind], width, height)
    began = time.monotonic()
    count = 0
    while True:
        frame = recorded[count % len(recorded)]
        count += 1
        if truncate_every and count % truncate_every == 0:
            frame = frame[: len(frame) // 2]
        # Paced against the start: sleeping a frame's length each time
        # would drift.
        time.sleep(max(0.0, began + count / fps - time.monotonic()))
        os.write(fd, frame)


if __name__ == "__main__":
    main()
