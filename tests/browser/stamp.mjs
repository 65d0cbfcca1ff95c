// Reads the latency stamp (docs/latency-stamp.md) from an image or video
// element's current picture, in the page: `readPicture(id)` returns
// { sum, captured, now, width, height } — a checksum of the picture, the
// capture time in µs (null when no stamp is readable) and the clock now in
// µs — or null while the element has no picture. It draws into the page's
// <canvas id="canvas"> and reads back only the stamp's corner (reading a
// whole 720p picture per frame would slow the browser down). Passed to
// pages as source text, so it must not use anything from its module.
export function readPicture(id) {
  const element = document.getElementById(id);
  const width = element.naturalWidth || element.videoWidth;
  const height = element.naturalHeight || element.videoHeight;
  if (!width || !height) return null;
  const canvas = document.getElementById("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(element, 0, 0);
  const now = Date.now() * 1000;
  const cell = 1 << Math.floor(Math.log2(Math.min(32, Math.max(8, Math.floor(width / 64)))));
  const corner = Math.min(width, 16 * cell);
  const data = context.getImageData(0, 0, corner, Math.min(height, 8 * cell)).data;
  let sum = 0;
  for (let i = 0; i < data.length; i += 97) sum = (sum * 31 + data[i]) >>> 0;
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
  let crc = 0xffff;
  for (const word of words.slice(1, 7)) {
    for (const byte of [word >> 8, word & 0xff]) {
      crc ^= byte << 8;
      for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  const stamped = words[0] === 0xb38f && words[7] === crc;
  const captured = stamped ? ((words[1] * 65536 + words[2]) * 65536 + words[3]) * 65536 + words[4] : null;
  return { sum, captured, now, width, height };
}
