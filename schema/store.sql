-- qkdb store, format version 2: the single source of truth for the layout of a `.qkdb` file.
-- QKStore applies exactly this text (Sources/QKStore/Schema.swift embeds it; a test checks they match).
-- Every table is STRICT so a wrong type is an error, never a silent coercion.
--
-- Blob encodings (a reader needs nothing but SQLite, zstd and this text):
--   zstd frame     one standard zstd frame that declares its decompressed size.
--   byte-shuffled  n elements of w bytes, little-endian, regrouped by byte significance: the n
--                  lowest bytes (byte 0 of element 0, 1, ..., n-1), then the n bytes 1, ..., then
--                  the n bytes w-1. Unshuffled: element i's byte b sits at offset b*n + i. With
--                  numpy: np.frombuffer(s, np.uint8).reshape(w, n).T.copy().view('<f4' or '<u4').
--   checksum       a signed 64-bit integer (the bits of an unsigned one) over a sequence of
--                  add(x) calls, each over the bytes of x (integers: 8 bytes little-endian; a
--                  blob given as a blob: add(length as 8 bytes) then add(its bytes)):
--                    P = 0x9E3779B97F4A7C15; mix(h, w) = x ^ (x >> 29) where x = ((h ^ w) * P) mod 2^64
--                    lanes a, b, c, d = 0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0,
--                    0x082EFA98EC4E6C89; length = 0
--                    add(bytes of n): length += n; for each whole 32-byte block, the four
--                      little-endian u64 words w0..w3: a = mix(a, w0), b = mix(b, w1),
--                      c = mix(c, w2), d = mix(d, w3); then for each whole 8-byte word w left:
--                      a = mix(a, w); then t = the 0-7 remaining bytes as a little-endian integer,
--                      b = mix(b, t ^ (n << 56) mod 2^64)
--                    value: h = mix(mix(mix(mix(length, a), b), c), d); h ^= h >> 32
--                  (fast corruption detection, not a cryptographic hash).

-- Key/value facts about the file itself; `format_version` tells a reader whether it can read it.
-- `manifest.run.<id>` = "<catalog> <statistics> <rows>", three checksums every write transaction
-- records for each run (see the header's checksum): catalog = that run's runs and pair_maps rows
-- and its chunks' (head, ordering, last_lead, first_lead) in zone-index order; statistics =
-- its features, examples and vocabulary rows; rows = its tensor rows (name, dtype, shape,
-- checksum), sequence rows (id, n_tokens, checksum) and chunk rows (ordering, seq, head,
-- first_lead, last_lead, nnz, checksum); each table in primary-key order, every value type-tagged
-- (QKStore/StoreManifest.swift). Read-only opens check the catalog sum when a query first touches
-- a run and the statistics sum before trusting its features; `qkdb verify` checks all three.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- One row per decomposition (trained by the pipeline or imported from a COO file).
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('trained', 'imported')),
    model        TEXT,
    architecture TEXT,
    layer        INTEGER,
    n_head       INTEGER NOT NULL CHECK (n_head > 0),
    n_kv_head    INTEGER,
    d_head       INTEGER,
    d_model      INTEGER,
    d_query      INTEGER NOT NULL CHECK (d_query >= 0),
    d_key        INTEGER NOT NULL CHECK (d_key >= 0),
    config       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    metrics      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    status       TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
) STRICT;

-- Dense tensors (dictionary weights): `data` is a zstd frame of the tensor's float32 values in
-- row-major order, byte-shuffled (w = 4); `shape` is a JSON array of the dimensions (their
-- product = the element count); `checksum` is add(data's bytes) of the compressed blob alone.
CREATE TABLE tensors (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name     TEXT    NOT NULL,
    dtype    TEXT    NOT NULL CHECK (dtype IN ('f32')),
    shape    TEXT    NOT NULL CHECK (json_valid(shape)),
    checksum INTEGER NOT NULL,
    data     BLOB    NOT NULL,
    PRIMARY KEY (run_id, name)
) STRICT;

-- The catalog entry of a run's pair map ([d_query, d_key, n_head] sparse tensor).
-- `value_codec` is 'f32' (lossless) or the lossy 'fp16' / 'bf16'; `max_abs_error` is a JSON object
-- giving, per float column, the largest absolute error the codec introduced (all 0 for f32).
-- `columns` (JSON array) names the float columns the run has, all stored in the query-major
-- ordering; `key_columns` names the one(s) the key-major ordering repeats for ranking (importance,
-- or value when the run has no importance). `extra_columns` names additional per-pair float columns.
-- `chunk_nnz` / `key_chunk_nnz`: target pairs per chunk of each ordering.
CREATE TABLE pair_maps (
    run_id        INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    nnz           INTEGER NOT NULL CHECK (nnz >= 0),
    value_codec   TEXT    NOT NULL CHECK (value_codec IN ('f32', 'fp16', 'bf16')),
    max_abs_error TEXT    NOT NULL CHECK (json_valid(max_abs_error)),
    columns       TEXT    NOT NULL CHECK (json_valid(columns)),
    key_columns   TEXT    NOT NULL CHECK (json_valid(key_columns)),
    extra_columns TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(extra_columns)),
    chunk_nnz     INTEGER NOT NULL CHECK (chunk_nnz > 0),
    key_chunk_nnz INTEGER NOT NULL CHECK (key_chunk_nnz > 0)
) STRICT;

-- Chunks of the pair map, stored twice: ordering 0 sorts by (head, query, key) and leads with the
-- query feature; ordering 1 sorts by (head, key, query) and leads with the key feature.
-- (head, first_lead, last_lead) is the zone map; a long row may continue into the next chunk.
-- `leads`: CSR of the rows (distinct leading features as deltas from first_lead, then offsets);
-- `trails`: trailing features as deltas restarting at each row; `floats`: the ordering's float
-- columns, each byte-shuffled, concatenated; since format 2 a tag byte 0x02, a bitmask of the byte
-- planes kept raw (those zstd would not shrink: noisy mantissa bytes, readable in place), one zstd
-- frame of the other planes, then the raw planes (format 1: one zstd frame of every plane; a
-- reader tells them apart by the first byte). Ordering 0 holds every column
-- (pair_maps.columns then extra_columns) in small chunks, so one pair is cheap to fetch;
-- ordering 1 holds only the ranking column(s) of pair_maps.key_columns, and a key-feature query
-- fetches the other columns of the pairs it returns from ordering 0.
-- `leads` and `trails` are zstd frames of byte-shuffled (w = 4) little-endian uint32 arrays.
-- `checksum`: add(ordering), add(head), add(first_lead), add(last_lead), add(nnz) as 64-bit
-- integers, then leads, trails and floats each as a blob (length, then bytes).
CREATE TABLE pair_chunks (
    run_id            INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    ordering          INTEGER NOT NULL CHECK (ordering IN (0, 1)),
    seq               INTEGER NOT NULL,
    head              INTEGER NOT NULL,
    first_lead        INTEGER NOT NULL,
    last_lead         INTEGER NOT NULL,
    nnz               INTEGER NOT NULL CHECK (nnz > 0),
    checksum          INTEGER NOT NULL,
    leads             BLOB    NOT NULL,
    trails            BLOB    NOT NULL,
    floats            BLOB    NOT NULL,
    PRIMARY KEY (run_id, ordering, seq)
) STRICT;
-- The zone-map index: a query seeks (run, head, ordering, last_lead >= f) and reads entries while
-- first_lead <= f, without touching a table row until it has found its chunks. Head before
-- ordering keeps both orderings' entries of one head side by side (usually in one index page),
-- so a key-feature query, which looks up its key-major chunk and then its pairs' query-major
-- chunks on the same head, reads one index page from disk when cold, not two.
-- (Format version 1 had (run_id, ordering, head, ...): same lookups, one more cold page read.)
CREATE INDEX pair_chunks_zone ON pair_chunks (run_id, head, ordering, last_lead, first_lead);

-- Per-feature statistics of each dictionary. `label`: step 2's automatic label (the tokens the
-- feature is selective for over the held-out sequences, with their share of its firings, e.g.
-- `“the” 41% · “a” 12%`, or `broad: 35% of tokens`; after `position P: ` when 90% of its firings
-- sit at one position), or the text a researcher set with `qkdb label`, which replaces it.
CREATE TABLE features (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    side            TEXT    NOT NULL CHECK (side IN ('query', 'key')),
    idx             INTEGER NOT NULL CHECK (idx >= 0),
    alive           INTEGER NOT NULL CHECK (alive IN (0, 1)),
    density         REAL,
    mean_activation REAL,
    max_activation  REAL,
    bos_fraction    REAL,
    label           TEXT,
    PRIMARY KEY (run_id, side, idx)
) STRICT;

-- Max-activating examples of each feature (rank 0 = strongest).
CREATE TABLE examples (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    side        TEXT    NOT NULL CHECK (side IN ('query', 'key')),
    feature     INTEGER NOT NULL,
    rank        INTEGER NOT NULL,
    sequence_id INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    activation  REAL    NOT NULL,
    PRIMARY KEY (run_id, side, feature, rank)
) STRICT;

-- Token sequences the examples point into: `tokens` is a zstd frame of n_tokens little-endian int32
-- token ids (not shuffled); `checksum` is add(tokens' bytes) of the compressed blob.
CREATE TABLE sequences (
    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    id       INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL CHECK (n_tokens >= 0),
    checksum INTEGER NOT NULL,
    tokens   BLOB    NOT NULL,
    PRIMARY KEY (run_id, id)
) STRICT;

-- The tokenizer's vocabulary, so examples can be shown as text without the model.
CREATE TABLE vocabulary (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    id     INTEGER NOT NULL,
    token  TEXT    NOT NULL,
    PRIMARY KEY (run_id, id)
) STRICT;

INSERT INTO meta (key, value) VALUES ('format_version', '2');
INSERT INTO meta (key, value) VALUES ('application', 'qkdb');
