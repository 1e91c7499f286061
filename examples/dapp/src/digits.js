// A drawing to the digits model's input, made the way the UCI "optdigits" images behind
// scikit-learn's digits data set were made: the ink is fitted (aspect kept, centred) into a
// 32x32 binary bitmap, and each non-overlapping 4x4 block becomes the count of its set pixels,
// so every one of the 64 values (row-major) is 0..16. Integer arithmetic only, no canvas
// scaling: the same drawing gives the same 64 bytes in every browser.

/** Bitmap side and block side of the data set (32 / 4 = 8 cells a row). */
export const BITMAP = 32;
export const BLOCK = 4;

/**
 * `alpha`: one ink value 0..255 per pixel of a `width` x `height` drawing, row-major (e.g. every
 * 4th byte of `getImageData().data`). Returns 64 integers 0..16, or null if nothing is drawn.
 */
export function toDigitsInput(alpha, width, height) {
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (alpha[y * width + x] > 0) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return null;
  // The ink's box, grown to a square around its centre: the longer side fills the bitmap.
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const left = x0 - Math.floor((side - (x1 - x0 + 1)) / 2);
  const top = y0 - Math.floor((side - (y1 - y0 + 1)) / 2);
  const ink = (x, y) => (x < 0 || y < 0 || x >= width || y >= height ? 0 : alpha[y * width + x]);
  // Bitmap pixel (bx, by) covers source columns [bx*side/32, (bx+1)*side/32) (at least one);
  // it is set when the mean ink over that area is at least half.
  const bitmap = new Uint8Array(BITMAP * BITMAP);
  for (let by = 0; by < BITMAP; by++) {
    const sy0 = top + Math.floor((by * side) / BITMAP);
    const sy1 = Math.max(sy0 + 1, top + Math.floor(((by + 1) * side) / BITMAP));
    for (let bx = 0; bx < BITMAP; bx++) {
      const sx0 = left + Math.floor((bx * side) / BITMAP);
      const sx1 = Math.max(sx0 + 1, left + Math.floor(((bx + 1) * side) / BITMAP));
      let sum = 0;
      for (let y = sy0; y < sy1; y++) for (let x = sx0; x < sx1; x++) sum += ink(x, y);
      bitmap[by * BITMAP + bx] = 2 * sum >= 255 * (sx1 - sx0) * (sy1 - sy0) ? 1 : 0;
    }
  }
  const cells = BITMAP / BLOCK;
  const out = new Array(cells * cells).fill(0);
  for (let by = 0; by < BITMAP; by++) {
    for (let bx = 0; bx < BITMAP; bx++) {
      out[Math.floor(by / BLOCK) * cells + Math.floor(bx / BLOCK)] += bitmap[by * BITMAP + bx];
    }
  }
  return out;
}
