// The latency stamp reader for browsers (the layout: docs/latency-stamp.md;
// the reference implementation: src/source/stamp.rs). The test pattern
// burns each frame's capture time into its top-left corner; reading it
// back from what a <video> or <img> shows gives capture→display latency.
//
//   edgecamStamp.read(element, canvas) → null while there is no picture,
//   else { captured, now, sum, width, height }: the capture time and the
//   clock now in µs since the Unix epoch (captured is null when the picture
//   carries no readable stamp), and a checksum of the stamp's corner.
//
// Only the corner is read back from the canvas: reading a whole 720p
// picture per frame would slow the page down. Both clocks must agree:
// measure on the board's own network with NTP.
"use strict";
window.edgecamStamp = (() => {
  const SYNC = 0xb38f;

  function crc16(words) {
    let crc = 0xffff;
    for (const word of words) {
      for (const byte of [word >> 8, word & 0xff]) {
        crc ^= byte << 8;
        for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
      }
    }
    return crc;
  }

  function read(element, canvas) {
    const width = element.naturalWidth || element.videoWidth;
    const height = element.naturalHeight || element.videoHeight;
    if (!width || !height) return null;
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(element, 0, 0);
    const now = Date.now() * 1000;
    // Cell size: width/64 clamped to 8–32, down to a power of two.
    const cell = 1 << Math.floor(Math.log2(Math.min(32, Math.max(8, Math.floor(width / 64)))));
    const corner = Math.min(width, 16 * cell);
    const data = context.getImageData(0, 0, corner, Math.min(height, 8 * cell)).data;
    let sum = 0;
    for (let i = 0; i < data.length; i += 97) sum = (sum * 31 + data[i]) >>> 0;
    // The middle half of each cell, thresholded halfway between black and white.
    const inset = Math.floor(cell / 4), span = Math.max(1, Math.floor(cell / 2));
    const words = [];
    for (let row = 0; row < 8; row++) {
      let word = 0;
      for (let column = 0; column < 16; column++) {
        let total = 0;
        for (let y = row * cell + inset; y < row * cell + inset + span; y++) {
          for (let x = column * cell + inset; x < column * cell + inset + span; x++) {
            const p = (y * corner + x) * 4;
            total += 0.299 * data[p] + 0.587 * data[p + 1] + 0.114 * data[p + 2];
          }
        }
        word = (word << 1) | (total / (span * span) >= 128 ? 1 : 0);
      }
      words.push(word);
    }
    const stamped = words[0] === SYNC && words[7] === crc16(words.slice(1, 7));
    const captured = stamped ? ((words[1] * 65536 + words[2]) * 65536 + words[3]) * 65536 + words[4] : null;
    return { captured, now, sum, width, height };
  }

  return { read };
})();
