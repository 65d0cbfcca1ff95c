"""WHEP clients written with aiortc (PyPI; scripts/lib/deps.sh installs it
into target/pyenv), for tests/webrtc.rs: a second WebRTC implementation
beside Chromium. Each prints one JSON line.

    whep_client.py play URL SECONDS PEERS
        PEERS peers at once, each decoding for SECONDS: frames decoded per
        peer, the time from POST to the first decoded frame, and (for the
        test pattern) the capture-to-decode latency read from the stamp
    whep_client.py vanish URL
        one peer that plays until frames flow, prints its session's URL,
        then dies without DELETE (os._exit), as a closed laptop would
"""

import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription

SYNC = 0xB38F


def crc16(words):
    crc = 0xFFFF
    for word in words:
        for byte in (word >> 8, word & 0xFF):
            crc ^= byte << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def stamp(frame):
    """The capture time in µs from the latency stamp (docs/latency-stamp.md)."""
    width = frame.width
    plane = frame.planes[0]
    data, stride = bytes(plane), plane.line_size
    cell = 1 << (min(32, max(8, width // 64))).bit_length() - 1
    inset, span = cell // 4, max(1, cell // 2)
    words = []
    for row in range(8):
        word = 0
        for column in range(16):
            total = 0
            for y in range(row * cell + inset, row * cell + inset + span):
                start = y * stride + column * cell + inset
                total += sum(data[start : start + span])
            word = (word << 1) | (1 if total / (span * span) >= 125 else 0)
        words.append(word)
    if words[0] != SYNC or words[7] != crc16(words[1:7]):
        return None
    return ((words[1] * 65536 + words[2]) * 65536 + words[3]) * 65536 + words[4]


def post(url, offer):
    """POSTs the offer; a 503 (the board busy, or its peers full) is tried
    again after its Retry-After, as WHEP players do, twice at most."""
    for attempt in range(3):
        request = urllib.request.Request(
            url, data=offer.encode(), method="POST", headers={"Content-Type": "application/sdp"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers["Location"], response.read().decode()
        except urllib.error.HTTPError as error:
            reason = error.read().decode(errors="replace").strip()
            if error.code != 503 or attempt == 2:
                raise RuntimeError(f"POST {url}: {error.code} {reason}") from None
            time.sleep(float(error.headers.get("Retry-After") or 2))


def delete(url):
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=5)
    except Exception:
        pass


async def connect(url):
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    track = asyncio.get_running_loop().create_future()
    pc.on("track", lambda t: track.done() or track.set_result(t))
    await pc.setLocalDescription(await pc.createOffer())
    posted = time.monotonic()
    status, location, answer = await asyncio.to_thread(post, url, pc.localDescription.sdp)
    assert status == 201, status
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc, await asyncio.wait_for(track, 10), posted, urllib.request.urljoin(url, location)


async def play_one(url, seconds):
    pc, track, posted, session = await connect(url)
    frames, first, latencies = 0, None, []
    until = None
    try:
        while until is None or time.monotonic() < until:
            frame = await asyncio.wait_for(track.recv(), 5)
            now_us = time.time() * 1e6
            if first is None:
                first = time.monotonic() - posted
                until = time.monotonic() + seconds
            frames += 1
            if frames % 5 == 0:
                captured = stamp(frame)
                if captured:
                    latencies.append((now_us - captured) / 1000)
    finally:
        await asyncio.to_thread(delete, session)
        await pc.close()
    latencies.sort()
    return {
        "frames": frames,
        "rate": frames / seconds,
        "first_frame_ms": round(first * 1000) if first is not None else None,
        "latency_p50_ms": latencies[len(latencies) // 2] if latencies else None,
        "width": frame.width,
    }


async def play(url, seconds, peers):
    return await asyncio.gather(*(play_one(url, seconds) for _ in range(peers)))


async def vanish(url):
    pc, track, _, session = await connect(url)
    for _ in range(10):
        await asyncio.wait_for(track.recv(), 5)
    print(json.dumps({"session": session}), flush=True)
    os._exit(0)


def main():
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "play":
        result = asyncio.run(play(url, float(sys.argv[3]), int(sys.argv[4])))
    else:
        result = asyncio.run(vanish(url))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
