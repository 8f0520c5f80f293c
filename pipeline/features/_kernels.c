/* The log-mel features' per-sample loops, compiled (see pipeline/features/kernels.py).
 *
 * numpy does each of these in several whole-array passes with scratch arrays between them;
 * here each is one pass over data that stays in the CPU's cache. Plain C99, no intrinsics:
 * built with -O3 for the machine's baseline instruction set, so the library runs on any CPU
 * of its architecture. The FFT between the first and second loop stays in ducc0.
 */
#include <stdint.h>

/* Frames [start, start + n) of the centred STFT of y, times the window, into out (n x n_fft).
 * Frame t starts at sample t * hop - n_fft / 2; samples outside y are 0 (librosa's padding). */
void window_frames(const float *y, int64_t len, int64_t start, int64_t n, int64_t n_fft, int64_t hop,
                   const float *window, float *out) {
    for (int64_t t = 0; t < n; t++) {
        int64_t first = (start + t) * hop - n_fft / 2;
        float *o = out + t * n_fft;
        if (first >= 0 && first + n_fft <= len) {
            const float *s = y + first;
            for (int64_t i = 0; i < n_fft; i++) o[i] = s[i] * window[i];
        } else {
            for (int64_t i = 0; i < n_fft; i++) {
                int64_t j = first + i;
                o[i] = (j >= 0 && j < len) ? y[j] * window[i] : 0.0f;
            }
        }
    }
}

/* One frame's mel power: the power of its spectrum s (n_bins (re, im) float pairs) into power,
 * then band m weighs bins [band_lo[m], band_lo[m] + band_len[m]) by weights[band_at[m]:], the
 * non-zero stretch of its row of the filterbank, into mel[m]. */
static void mel_frame(const float *s, int64_t n_bins, int64_t n_mels, const int32_t *band_lo,
                      const int32_t *band_len, const int32_t *band_at, const float *weights, float *power,
                      float *mel) {
    for (int64_t k = 0; k < n_bins; k++) power[k] = s[2 * k] * s[2 * k] + s[2 * k + 1] * s[2 * k + 1];
    for (int64_t m = 0; m < n_mels; m++) {
        const float *w = weights + band_at[m];
        const float *p = power + band_lo[m];
        float acc = 0.0f;
        for (int32_t k = 0; k < band_len[m]; k++) acc += w[k] * p[k];
        mel[m] = acc;
    }
}

/* The float16 bits of log10(1 + 10000 x) for the float32 x of bit pattern b, by the table of
 * float16.py (_log_mel_table): cell b >> shift holds the value at its start and the offset
 * where it steps up by one. The caller has checked b < top, the table's end. */
static inline uint16_t log_mel_bits(uint32_t b, const uint16_t *start, const uint16_t *step_at, int32_t shift,
                                    uint16_t flushed) {
    uint32_t cell = b >> shift;
    uint16_t value = (uint16_t)(start[cell] + ((b & ((1u << shift) - 1)) >= step_at[cell]));
    return value == flushed ? 0 : value;
}

static inline uint32_t float_bits(float x) {
    union { float f; uint32_t u; } v = {x};
    return v.u;
}

/* Mel power of n frames of a complex spectrum (n x n_bins (re, im) float pairs) into out
 * (n x n_mels). power is scratch of n_bins floats. */
void mel_from_spectrum(const float *spec, int64_t n, int64_t n_bins, int64_t n_mels,
                       const int32_t *band_lo, const int32_t *band_len, const int32_t *band_at,
                       const float *weights, float *power, float *out) {
    for (int64_t t = 0; t < n; t++)
        mel_frame(spec + t * 2 * n_bins, n_bins, n_mels, band_lo, band_len, band_at, weights, power,
                  out + t * n_mels);
}

/* The cache's log-mel of n frames straight from their spectrum: mel_from_spectrum, then each
 * value's float16 by the table, into out (n x n_mels float16 bits) without a float32 array in
 * between. scratch holds n_bins + n_mels floats. Returns 1, with out unfinished, as soon as a
 * value is out of the table (its bits >= top), for the caller to compute exactly; else 0. */
int log_mel_from_spectrum(const float *spec, int64_t n, int64_t n_bins, int64_t n_mels,
                          const int32_t *band_lo, const int32_t *band_len, const int32_t *band_at,
                          const float *weights, float *scratch, const uint16_t *start, const uint16_t *step_at,
                          uint32_t top, int32_t shift, uint16_t flushed, uint16_t *out) {
    float *mel = scratch + n_bins;
    for (int64_t t = 0; t < n; t++) {
        mel_frame(spec + t * 2 * n_bins, n_bins, n_mels, band_lo, band_len, band_at, weights, scratch, mel);
        for (int64_t m = 0; m < n_mels; m++) {
            uint32_t b = float_bits(mel[m]);
            if (b >= top) return 1;
            out[t * n_mels + m] = log_mel_bits(b, start, step_at, shift, flushed);
        }
    }
    return 0;
}

/* log_mel_from_spectrum's second half alone, for count float32 values given by their bit
 * patterns (a mel power computed elsewhere). */
int log_mel_f16(const uint32_t *bits, int64_t count, const uint16_t *start, const uint16_t *step_at,
                uint32_t top, int32_t shift, uint16_t flushed, uint16_t *out) {
    for (int64_t i = 0; i < count; i++) {
        if (bits[i] >= top) return 1;
        out[i] = log_mel_bits(bits[i], start, step_at, shift, flushed);
    }
    return 0;
}
