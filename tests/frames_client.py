#!/usr/bin/python3
"""Clients of edgecam's frame socket (/api/frames/ws), for tests/frames.rs.
Each prints one JSON line summarising what it received.

    frames_client.py text URL SECONDS
        a client written as DrishtiStream's README shows one: JSON messages,
        base64 JPEG images
    frames_client.py binary URL SECONDS
        three sockets at once, gray8 with no compression, lz4 and zstd: do
        the decompressed payloads match the uncompressed ones byte for byte?
    frames_client.py crowd URL SECONDS CLIENTS
        CLIENTS text sockets, one of which never reads
    frames_client.py probe URL SECONDS
        one socket (URL carries the query; text or binary): the frames'
        shape, rate, bytes on the wire, ids and capture times
"""

import asyncio
import base64
import hashlib
import json
import struct
import sys
import time

import lz4.frame
import websockets
import zstandard

HEADER = struct.Struct("<4sBBBxQQIIII")


async def text(url, seconds):
    frames = []
    async with websockets.connect(url, max_size=None) as ws:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            message = json.loads(await ws.recv())
            image = base64.b64decode(message["image"])
            frames.append(
                {
                    "frame_id": message["frame_id"],
                    "timestamp": message["timestamp"],
                    "fps": message["fps"],
                    "source": message["source"],
                    "version": message["version"],
                    "jpeg": image[:2] == b"\xff\xd8" and image.rstrip(b"\0")[-2:] == b"\xff\xd9",
                    "size": len(image),
                }
            )
            if len(frames) == 1:
                with open(f"{sys.argv[4]}", "wb") as out:
                    out.write(image)
    ids = [f["frame_id"] for f in frames]
    gaps = [b["timestamp"] - a["timestamp"] for a, b in zip(frames, frames[1:])]
    return {
        "frames": len(frames),
        "increasing": all(b > a for a, b in zip(ids, ids[1:])),
        "all_jpeg": all(f["jpeg"] for f in frames),
        "source": frames[0]["source"] if frames else None,
        "version": frames[0]["version"] if frames else None,
        "fps": frames[0]["fps"] if frames else None,
        "first_id": ids[0] if ids else None,
        "first_timestamp": frames[0]["timestamp"] if frames else None,
        "last_id": ids[-1] if ids else None,
        "gaps": gaps,
    }


async def binary_frames(url, seconds, decode):
    frames = {}
    async with websockets.connect(url, max_size=None) as ws:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            message = await ws.recv()
            magic, version, fmt, compression, frame_id, captured, width, height, stride, length = (
                HEADER.unpack_from(message)
            )
            assert magic == b"EDGF" and version == 1, (magic, version)
            payload = message[HEADER.size : HEADER.size + length]
            frames[frame_id] = (decode(payload), width, height, stride, captured)
    return frames


async def binary(url, seconds):
    plain, lz4_, zstd_ = await asyncio.gather(
        binary_frames(url + "?format=gray8&compression=none", seconds, lambda p: p),
        binary_frames(url + "?format=gray8&compression=lz4", seconds, lz4.frame.decompress),
        binary_frames(
            url + "?format=gray8&compression=zstd",
            seconds,
            zstandard.ZstdDecompressor().decompress,
        ),
    )
    common = set(plain) & set(lz4_) & set(zstd_)
    same = [
        i
        for i in common
        if plain[i][0] == lz4_[i][0] == zstd_[i][0]
    ]
    any_frame = next(iter(plain.values()), (b"", 0, 0, 0, 0))
    return {
        "plain": len(plain),
        "lz4": len(lz4_),
        "zstd": len(zstd_),
        "common": len(common),
        "identical": len(same),
        "width": any_frame[1],
        "height": any_frame[2],
        "stride": any_frame[3],
        "bytes": len(any_frame[0]),
    }


async def reader(url, seconds):
    ids = []
    async with websockets.connect(url, max_size=None) as ws:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            ids.append(json.loads(await ws.recv())["frame_id"])
    return ids


async def crowd(url, seconds, clients):
    # Uncompressed I420 fills the socket buffers within seconds.
    silent = await websockets.connect(url + "?format=i420", max_size=None)
    # Never read: the socket's buffers fill, and the server must let go.
    silent.transport.pause_reading()
    results = await asyncio.gather(*(reader(url, seconds) for _ in range(clients - 1)))
    shares = [len(ids) / (ids[-1] - ids[0] + 1) for ids in results if len(ids) > 1]
    await asyncio.sleep(0)
    return {"readers": len(shares), "worst_share": min(shares), "mean_frames": sum(map(len, results)) / len(results)}


async def probe(url, seconds):
    frames = []
    wire = 0
    digests = set()
    async with websockets.connect(url, max_size=None) as ws:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            message = await ws.recv()
            wire += len(message)
            if isinstance(message, str):
                # Text mode: JSON, a base64 JPEG.
                text = json.loads(message)
                frame_id, captured = text["frame_id"], round(text["timestamp"] * 1e6)
                width = height = stride = fmt = compression = 0
                length = len(text["image"])
                digests.add(hashlib.sha1(text["image"].encode()).digest())
            else:
                digests.add(hashlib.sha1(message[HEADER.size :]).digest())
                _, _, fmt, compression, frame_id, captured, width, height, stride, length = (
                    HEADER.unpack_from(message)
                )
            frames.append((frame_id, captured, width, height, stride, length, fmt, compression, time.time()))
        elapsed = time.monotonic() - started
    first = frames[0] if frames else (0,) * 9
    return {
        "frames": len(frames),
        "rate": len(frames) / elapsed,
        "mb_per_s": wire / elapsed / 1e6,
        "width": first[2],
        "height": first[3],
        "stride": first[4],
        "payload": first[5],
        "format": first[6],
        "compression": first[7],
        "distinct": len(digests),
        "ids": [f[0] for f in frames],
        "captured_us": [f[1] for f in frames],
        "received_s": [f[8] for f in frames],
    }


def main():
    mode, url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if mode == "text":
        result = asyncio.run(text(url, seconds))
    elif mode == "binary":
        result = asyncio.run(binary(url, seconds))
    elif mode == "probe":
        result = asyncio.run(probe(url, seconds))
    else:
        result = asyncio.run(crowd(url, seconds, int(sys.argv[4])))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
