#!/usr/bin/env python3
"""Makes a v4l2loopback node (0.12) take a new writer, for the VM tests.

A writer that only write()s (ffmpeg's v4l2 output) is never marked as one,
so when it closes the node stops announcing itself as an output, and every
later writer's first ioctl is refused (EINVAL): a webcam "unplugged" by
stopping its writer could never come back. Starting an output stream marks
the opener as a writer, whose close restores the output capability; the
capabilities the kernel checks ioctls against are refreshed only by
VIDIOC_QUERYCAP, so that is asked last.

    webcam-reset.py DEVICE
"""

import fcntl
import os
import struct
import sys

VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability)
VIDIOC_STREAMON = 0x40045612  # _IOW('V', 18, int)
V4L2_BUF_TYPE_VIDEO_OUTPUT = 2

device = sys.argv[1]
fd = os.open(device, os.O_RDWR)
try:
    fcntl.ioctl(fd, VIDIOC_STREAMON, struct.pack("i", V4L2_BUF_TYPE_VIDEO_OUTPUT))
except OSError:
    pass  # a reader still holds it streaming: nothing to reset yet
os.close(fd)
fd = os.open(device, os.O_RDWR)
fcntl.ioctl(fd, VIDIOC_QUERYCAP, bytearray(104))
os.close(fd)
