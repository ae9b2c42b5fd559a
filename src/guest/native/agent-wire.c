/*
 * The wire format of docs/PROTOCOL.md, matching src/protocol/wire.ts byte for byte: COBS
 * framing on 0x00, bodies of kind:u8 id:u64le payload, records of typed values. Input is
 * hostile: every length is checked against what remains before it is used, nesting is bounded
 * at 4 exactly as wire.ts counts it, and nothing is allocated beyond one frame.
 */
#include "agent.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- byte queues */

uint8_t *buf_room(struct buf *b, size_t n) {
  if (b->off + b->len + n > b->cap) {
    if (b->off > 0 && b->off >= b->len) { /* compact only when it frees at least as much as it moves */
      memmove(b->p, b->p + b->off, b->len);
      b->off = 0;
    }
    if (b->off + b->len + n > b->cap) {
      size_t cap = b->cap < 4096 ? 4096 : b->cap;
      while (cap < b->off + b->len + n) cap *= 2;
      uint8_t *p = realloc(b->p, cap);
      if (!p) return NULL;
      b->p = p;
      b->cap = cap;
    }
  }
  return b->p + b->off + b->len;
}

void buf_drop(struct buf *b, size_t n) {
  b->off += n;
  b->len -= n;
  if (b->len == 0) {
    b->off = 0;
    if (b->cap > 1024 * 1024) buf_free(b); /* give back what a burst took */
  }
}

void buf_free(struct buf *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

/* ---------------------------------------------------------------- frame input */

uint8_t *in_room(struct inbuf *in, size_t *n) {
  if (in->start > 0 && (in->start == in->len || in->len + IN_READ_CHUNK > in->cap)) {
    memmove(in->p, in->p + in->start, in->len - in->start);
    in->len -= in->start;
    in->scan -= in->start;
    in->start = 0;
  }
  if (in->len + IN_READ_CHUNK > in->cap) {
    size_t cap = in->cap ? in->cap * 2 : 2 * IN_READ_CHUNK;
    if (cap > MAX_FRAME_BYTES + 2 * IN_READ_CHUNK) cap = MAX_FRAME_BYTES + 2 * IN_READ_CHUNK;
    if (cap < in->len + IN_READ_CHUNK) return NULL; /* cannot happen: frames are cut at MAX_FRAME_BYTES */
    uint8_t *p = realloc(in->p, cap);
    if (!p) return NULL;
    in->p = p;
    in->cap = cap;
  }
  *n = IN_READ_CHUNK;
  return in->p + in->len;
}

int in_next(struct inbuf *in, uint8_t **f, size_t *n) {
  while (in->scan < in->len) {
    uint8_t *z = memchr(in->p + in->scan, 0, in->len - in->scan);
    if (in->over) { /* skipping an oversized frame: its bytes are counted, never kept */
      if (!z) {
        in->over += in->len - in->scan;
        in->start = in->scan = in->len = 0;
        return 0;
      }
      *n = in->over + (size_t)(z - (in->p + in->scan));
      in->over = 0;
      in->start = in->scan = (size_t)(z - in->p) + 1;
      return 2;
    }
    if (!z) {
      in->scan = in->len;
      break;
    }
    size_t flen = (size_t)(z - (in->p + in->start));
    *f = in->p + in->start;
    in->start = in->scan = (size_t)(z - in->p) + 1;
    if (flen > MAX_FRAME_BYTES) { /* a whole oversized frame arrived in the buffer */
      in->headlen = sizeof(in->head);
      memcpy(in->head, *f, in->headlen);
      *n = flen;
      return 2;
    }
    if (flen == 0) continue; /* padding (the host sends one 0x00 when it connects) */
    *n = flen;
    return 1;
  }
  /* No delimiter yet: past the limit, keep only the head and skip the rest. */
  if (!in->over && in->len - in->start > MAX_FRAME_BYTES) {
    in->headlen = sizeof(in->head);
    memcpy(in->head, in->p + in->start, in->headlen);
    in->over = in->len - in->start;
    in->start = in->scan = in->len = 0;
  }
  if (in->start == in->len) in->start = in->scan = in->len = 0;
  return 0;
}

void in_free(struct inbuf *in) {
  free(in->p);
  memset(in, 0, sizeof(*in));
}

/* ---------------------------------------------------------------- COBS */

/* Encodes a||b (a frame body given in two pieces) and the delimiter onto `out`. */
bool cobs_append(struct buf *out, const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t total = an + bn;
  uint8_t *o = buf_room(out, total + total / 254 + 2);
  if (!o) return false;
  size_t code_at = 0, w = 1;
  uint8_t code = 1;
  for (int seg = 0; seg < 2; seg++) {
    const uint8_t *d = seg ? b : a;
    size_t n = seg ? bn : an;
    for (size_t r = 0; r < n; r++) {
      if (d[r] == 0) {
        o[code_at] = code;
        code_at = w++;
        code = 1;
        continue;
      }
      o[w++] = d[r];
      if (++code == 0xff) {
        o[code_at] = code;
        code_at = w++;
        code = 1;
      }
    }
  }
  o[code_at] = code;
  o[w++] = 0;
  out->len += w;
  return true;
}

long cobs_decode(uint8_t *f, size_t n) {
  size_t r = 0, w = 0;
  while (r < n) {
    uint8_t code = f[r++];
    if (code == 0) return -1;
    size_t end = r + code - 1;
    if (end > n) return -1;
    for (; r < end; r++) {
      if (f[r] == 0) return -1;
      f[w++] = f[r];
    }
    if (code != 0xff && r < n) f[w++] = 0;
  }
  return (long)w;
}

size_t cobs_peek(const uint8_t *f, size_t n, uint8_t *out, size_t want) {
  size_t r = 0, w = 0;
  while (r < n && w < want) {
    uint8_t code = f[r++];
    if (code == 0) return w;
    for (size_t i = 1; i < code && w < want; i++, r++) {
      if (r >= n || f[r] == 0) return w;
      out[w++] = f[r];
    }
    if (code != 0xff && r < n && w < want) out[w++] = 0;
  }
  return w;
}

/* ---------------------------------------------------------------- records: validation */

const char *wire_why = "";

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static int64_t le64s(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return (int64_t)v;
}

#define MAX_SAFE 9007199254740991LL

static const uint8_t *chk_value(const uint8_t *p, const uint8_t *end, int depth) {
  if (p >= end) return wire_why = "value: truncated", NULL;
  uint8_t tag = *p++;
  size_t left = (size_t)(end - p);
  switch (tag) {
  case T_NULL: case T_FALSE: case T_TRUE: return p;
  case T_INT: {
    if (left < 8) return wire_why = "integer: truncated", NULL;
    int64_t v = le64s(p);
    if (v > MAX_SAFE || v < -MAX_SAFE) return wire_why = "integer beyond 2^53", NULL;
    return p + 8;
  }
  case T_FLOAT: {
    double d;
    if (left < 8) return wire_why = "float: truncated", NULL;
    memcpy(&d, p, 8);
    if (!isfinite(d)) return wire_why = "float is not finite", NULL;
    return p + 8;
  }
  case T_STRING: case T_BYTES: {
    if (left < 4 || left - 4 < le32(p)) return wire_why = "string: longer than the frame", NULL;
    return p + 4 + le32(p);
  }
  case T_LIST: {
    if (depth >= 4) return wire_why = "nested deeper than 4", NULL;
    if (left < 4) return wire_why = "list: truncated", NULL;
    uint32_t count = le32(p);
    p += 4;
    if ((size_t)(end - p) < count) return wire_why = "list: more items than bytes", NULL;
    for (uint32_t i = 0; i < count && p; i++) p = chk_value(p, end, depth + 1);
    return p;
  }
  case T_RECORD:
    if (depth >= 4) return wire_why = "nested deeper than 4", NULL;
    return chk_record(p, end, depth + 1);
  default: return wire_why = "unknown value type", NULL;
  }
}

struct key { const uint8_t *k; size_t n; };
static int key_cmp(const void *a, const void *b) {
  const struct key *x = a, *y = b;
  int c = memcmp(x->k, y->k, x->n < y->n ? x->n : y->n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* A record at p (its u16 count); its end, or NULL with wire_why set. depth: as wire.ts counts. */
const uint8_t *chk_record(const uint8_t *p, const uint8_t *end, int depth) {
  if (end - p < 2) return wire_why = "record: truncated", NULL;
  uint16_t count = le16(p);
  p += 2;
  if ((size_t)(end - p) < (size_t)count * 3) return wire_why = "record: more fields than bytes", NULL;
  struct key small[16], *keys = count <= 16 ? small : malloc(count * sizeof(struct key));
  if (!keys) return wire_why = "record: out of memory", NULL;
  for (uint16_t i = 0; i < count && p; i++) {
    if (p >= end || *p == 0 || (size_t)(end - p - 1) < *p) {
      wire_why = p < end && *p == 0 ? "record: empty key" : "record: truncated key";
      p = NULL;
      break;
    }
    keys[i].n = *p;
    keys[i].k = p + 1;
    p = chk_value(p + 1 + *p, end, depth);
  }
  if (p && count > 1) { /* duplicate keys are a violation */
    qsort(keys, count, sizeof(struct key), key_cmp);
    for (uint16_t i = 1; i < count; i++)
      if (key_cmp(&keys[i - 1], &keys[i]) == 0) {
        wire_why = "record: duplicate key";
        p = NULL;
        break;
      }
  }
  if (keys != small) free(keys);
  return p;
}

/* ---------------------------------------------------------------- records: access (validated) */

static const uint8_t *rec_skip(const uint8_t *p) {
  struct val v;
  uint16_t count = le16(p);
  p += 2;
  for (uint16_t i = 0; i < count; i++) p = val_at(p + 1 + *p, &v);
  return p;
}

const uint8_t *val_at(const uint8_t *p, struct val *v) {
  memset(v, 0, sizeof(*v));
  v->t = *p++;
  switch (v->t) {
  case T_INT: v->i = le64s(p); return p + 8;
  case T_FLOAT: memcpy(&v->f, p, 8); return p + 8;
  case T_STRING: case T_BYTES: v->n = le32(p); v->p = p + 4; return p + 4 + v->n;
  case T_LIST: {
    struct val item;
    v->n = le32(p);
    v->p = p + 4;
    p += 4;
    for (uint32_t i = 0; i < v->n; i++) p = val_at(p, &item);
    return p;
  }
  case T_RECORD: v->p = p; return rec_skip(p);
  default: return p;
  }
}

/* Iterates a record's fields: call with p = rec + 2 after reading the count. */
const uint8_t *rec_field(const uint8_t *p, const uint8_t **key, size_t *keylen, struct val *v) {
  *keylen = *p;
  *key = p + 1;
  return val_at(p + 1 + *p, v);
}

bool rec_get(const uint8_t *rec, const char *key, struct val *v) {
  size_t kl = strlen(key), n;
  uint16_t count = le16(rec);
  const uint8_t *p = rec + 2, *k;
  for (uint16_t i = 0; i < count; i++) {
    p = rec_field(p, &k, &n, v);
    if (n == kl && memcmp(k, key, n) == 0) return true;
  }
  return false;
}

/* ---------------------------------------------------------------- records: the reply writer */

static uint8_t g_body[BODY_CAP];
static struct w g_w;

static void w_put(struct w *w, const void *d, size_t n) {
  if (w->overflow || w->cap - w->len < n) {
    w->overflow = true;
    return;
  }
  memcpy(w->p + w->len, d, n);
  w->len += n;
}
static void w_le(struct w *w, uint64_t v, int bytes) {
  uint8_t b[8];
  for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
  w_put(w, b, (size_t)bytes);
}

/* A value header: counts it in the open record/list and writes the key (records) and tag. */
static void w_head(struct w *w, const char *k, uint8_t tag) {
  w->n[w->depth]++;
  if (!w->list[w->depth]) {
    size_t kl = strlen(k);
    w_le(w, kl, 1);
    w_put(w, k, kl);
  }
  w_le(w, tag, 1);
}

struct w *w_begin(uint8_t kind, uint64_t id) {
  struct w *w = &g_w;
  memset(w, 0, sizeof(*w));
  w->p = g_body;
  w->cap = sizeof(g_body);
  w_le(w, kind, 1);
  w_le(w, id, 8);
  w->at[0] = w->len;
  w_le(w, 0, 2);
  return w;
}

void w_null(struct w *w, const char *k) { w_head(w, k, T_NULL); }
void w_bool(struct w *w, const char *k, bool v) { w_head(w, k, v ? T_TRUE : T_FALSE); }
void w_int(struct w *w, const char *k, int64_t v) { w_head(w, k, T_INT); w_le(w, (uint64_t)v, 8); }
void w_float(struct w *w, const char *k, double v) {
  uint64_t bits;
  if (!isfinite(v)) v = 0;
  memcpy(&bits, &v, 8);
  w_head(w, k, T_FLOAT);
  w_le(w, bits, 8);
}
void w_strn(struct w *w, const char *k, const void *s, size_t n) {
  w_head(w, k, T_STRING);
  w_le(w, n, 4);
  w_put(w, s, n);
}
void w_str(struct w *w, const char *k, const char *s) { w_strn(w, k, s, strlen(s)); }

static void w_open(struct w *w, const char *k, bool list) {
  w_head(w, k, list ? T_LIST : T_RECORD);
  if (w->depth + 1 >= 6) {
    w->overflow = true;
    return;
  }
  w->depth++;
  w->at[w->depth] = w->len;
  w->n[w->depth] = 0;
  w->list[w->depth] = list;
  w_le(w, 0, list ? 4 : 2);
}
void w_open_list(struct w *w, const char *k) { w_open(w, k, true); }
void w_open_rec(struct w *w, const char *k) { w_open(w, k, false); }

static void w_patch(struct w *w) {
  size_t at = w->at[w->depth];
  uint32_t n = w->n[w->depth];
  if (w->overflow) return;
  for (int i = 0; i < (w->list[w->depth] ? 4 : 2); i++) w->p[at + (size_t)i] = (uint8_t)(n >> (8 * i));
}

void w_close(struct w *w) {
  if (w->depth == 0) return;
  w_patch(w);
  w->depth--;
}

void w_rollback(struct w *w, size_t len) {
  w->len = len;
  w->overflow = false;
  w->n[w->depth]--;
}

bool w_end(struct w *w) {
  while (w->depth > 0) w_close(w);
  w_patch(w);
  return !w->overflow;
}

/* ---------------------------------------------------------------- SHA-256 (FIPS 180-4) */

static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) ((x) >> (n) | (x) << (32 - (n)))

static void sha256_block(uint32_t *h, const uint8_t *p) {
  uint32_t w[64], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void sha256_init(struct sha256 *s) {
  static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
  memcpy(s->h, iv, sizeof(iv));
  s->bytes = 0;
  s->used = 0;
}

void sha256_update(struct sha256 *s, const uint8_t *d, size_t n) {
  s->bytes += n;
  if (s->used) {
    size_t k = 64 - s->used < n ? 64 - s->used : n;
    memcpy(s->blk + s->used, d, k);
    s->used += k;
    d += k;
    n -= k;
    if (s->used < 64) return;
    sha256_block(s->h, s->blk);
    s->used = 0;
  }
  for (; n >= 64; d += 64, n -= 64) sha256_block(s->h, d);
  memcpy(s->blk, d, n);
  s->used = n;
}

void sha256_hex(struct sha256 *s, char out[65]) {
  uint64_t bits = s->bytes * 8;
  uint8_t pad[72] = { 0x80 }, digest[32];
  size_t padlen = (s->used < 56 ? 56 : 120) - s->used;
  for (int i = 0; i < 8; i++) pad[padlen + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
  uint64_t keep = s->bytes;
  sha256_update(s, pad, padlen + 8);
  s->bytes = keep;
  for (int i = 0; i < 32; i++) digest[i] = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));
  hex(digest, 32, out);
}

void hex(const uint8_t *d, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[2 * n] = 0;
}
