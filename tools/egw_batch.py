"""Decoder of egw batch payloads (doc/batch-format.md), shared by
tools/egw-batch and tools/devbackend.py.  Standard library only.

decode(payload) takes the payload object of a batch (the JWT's claims) and
returns every poll of every device in full:

  {"v", "seq", "iat", "gateway", "from_ms", "to_ms",
   "devices": [{"id", "profile", "serial",
                "polls": [{"ts_ms", "raw": {"<addr>": word, ...},
                           "read": [[fc, addr, count], ...],
                           "failed": [[fc, addr, count, error], ...],
                           "reading": {"pv": {...}, ...} | None,
                           "missed": error | None}, ...]}],
   "frequency": {"device", "interval_ms", "samples": [[ts_ms, hz], ...],
                 "missing": [ts_ms, ...]} | None,
   "fcr": {"battery", "interval_ms",
           "records": [[ts_ms, hz, setpoint_W | None, measured_W | None], ...],
           "overflow"} | None,
   "overflow": {...} | None}

"raw" is the poll's register map exactly as the gateway's profile layer
builds it: every register of every block read in that poll, keyed by decimal
address, input registers first and holding registers over them.  Version 1
payloads (the verbose format: "raw"/"readings" maps keyed by timestamp) are
decoded into the same shape.  "missed" is the error (negative) of a
scheduled poll that read nothing (version 3: -110 timeout, -107 device
offline, Modbus exceptions...); such a poll has an empty "raw" and no
reading.  Malformed input raises BatchError, nothing else."""
import base64
import binascii

FORMAT_VERSION = 3
VERSIONS = (2, 3, 4)  # the compact format; 3 adds the missed polls ("m"), 4 steps and changes in "d"
FC_HOLDING, FC_INPUT = 3, 4


class BatchError(ValueError):
    pass


def _need(cond, what):
    if not cond:
        raise BatchError(what)


def _int(v, what, lo=None, hi=None):
    _need(isinstance(v, int) and not isinstance(v, bool), f"{what}: not an integer")
    _need(lo is None or v >= lo, f"{what}: below {lo}")
    _need(hi is None or v <= hi, f"{what}: above {hi}")
    return v


def _b64url(s, what):
    _need(isinstance(s, str), f"{what}: not a string")
    _need("=" not in s, f"{what}: padded base64url")
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError) as e:
        raise BatchError(f"{what}: {e}") from None


def raw_map(blocks):
    """{"<addr>": word} of blocks [(fc, addr, words)], input first, holding over."""
    out = {}
    for fc in (FC_INPUT, FC_HOLDING):
        for bfc, addr, words in blocks:
            if bfc != fc:
                continue
            for k, w in enumerate(words):
                out[str(addr + k)] = w
    return out


def _apply_reading(cur, ch, what):
    _need(isinstance(ch, dict), f"{what}: not an object")
    out = {g: dict(v) for g, v in (cur or {}).items()}
    for g, fields in ch.items():
        _need(isinstance(fields, dict), f"{what}.{g}: not an object")
        grp = out.setdefault(g, {})
        for name, v in fields.items():
            if v is None:
                grp.pop(name, None)
            else:
                _need(isinstance(v, (int, float)) and not isinstance(v, bool),
                      f"{what}.{g}.{name}: not a number")
                grp[name] = v
        if not grp:
            del out[g]
    return out


def _device_v2(d, from_ms, i, v):
    what = f"devices[{i}]"
    _need(isinstance(d, dict), f"{what}: not an object")
    blocks = d.get("blocks")
    kf = d.get("kf")
    polls = d.get("polls")
    _need(isinstance(blocks, list), f"{what}.blocks: not an array")
    _need(isinstance(kf, list) and len(kf) == len(blocks), f"{what}.kf: not one per block")
    _need(isinstance(polls, list), f"{what}.polls: not an array")
    table, offs, n = [], [], 0
    for k, b in enumerate(blocks):
        _need(isinstance(b, list) and len(b) == 3, f"{what}.blocks[{k}]: not [fc, addr, count]")
        fc = _int(b[0], f"{what}.blocks[{k}][0]", 0, 255)
        addr = _int(b[1], f"{what}.blocks[{k}][1]", 0, 65535)
        count = _int(b[2], f"{what}.blocks[{k}][2]", 1, 125)
        table.append((fc, addr, count))
        offs.append(n)
        n += count
    cur = [None] * len(table)  # the latest words of each block
    for k, s in enumerate(kf):
        if s is None:
            continue
        raw = _b64url(s, f"{what}.kf[{k}]")
        _need(len(raw) == 2 * table[k][2], f"{what}.kf[{k}]: not {table[k][2]} registers")
        cur[k] = [raw[2 * j] << 8 | raw[2 * j + 1] for j in range(table[k][2])]
    owner = []  # word index -> (block, offset)
    for k, (_, _, count) in enumerate(table):
        owner.extend((k, j) for j in range(count))
    reading = None
    ts = from_ms
    out = []
    for p_i, p in enumerate(polls):
        pw = f"{what}.polls[{p_i}]"
        _need(isinstance(p, dict), f"{pw}: not an object")
        ts += _int(p.get("t"), f"{pw}.t")
        if "m" in p:
            _need(v >= 3, f"{pw}.m: not in version {v}")
            err = _int(p["m"], f"{pw}.m", None, -1)
            _need(p.get("b") == "0" and not {"d", "e", "r"} & set(p),
                  f"{pw}: a missed poll with registers or a reading")
            out.append({"ts_ms": ts, "raw": {}, "read": [], "failed": [], "reading": None,
                        "missed": err})
            continue
        bits = p.get("b")
        _need(isinstance(bits, str) and bits != "", f"{pw}.b: not a hex string")
        try:
            mask = int(bits, 16)
        except ValueError:
            raise BatchError(f"{pw}.b: not a hex string") from None
        _need(bits.strip() == bits and not bits.startswith(("+", "-", "0x")),
              f"{pw}.b: not a hex string")
        _need(mask >> len(table) == 0, f"{pw}.b: names a block not in blocks")
        for k in range(len(table)):
            if mask >> k & 1:
                _need(cur[k] is not None, f"{pw}.b: block {k} read but has no keyframe")
        deltas = p.get("d", [])
        _need(isinstance(deltas, list) and len(deltas) % 2 == 0, f"{pw}.d: not pairs")
        idx = 0
        for j in range(0, len(deltas), 2):
            if v >= 4:
                # the index as a step from the previous one, the word's change
                idx += _int(deltas[j], f"{pw}.d[{j}]", -(n - 1), n - 1)
                _need(0 <= idx < n, f"{pw}.d[{j}]: register index out of range")
                change = _int(deltas[j + 1], f"{pw}.d[{j + 1}]", -32768, 32767)
            else:
                idx = _int(deltas[j], f"{pw}.d[{j}]", 0, n - 1)
                word = _int(deltas[j + 1], f"{pw}.d[{j + 1}]", 0, 65535)
            k, off = owner[idx]
            _need(mask >> k & 1, f"{pw}.d[{j}]: register of a block not read in this poll")
            cur[k][off] = (cur[k][off] + change) & 0xFFFF if v >= 4 else word
        failed = []
        errs = p.get("e", [])
        _need(isinstance(errs, list), f"{pw}.e: not an array")
        for j, e in enumerate(errs):
            _need(isinstance(e, list) and len(e) == 2, f"{pw}.e[{j}]: not [block, error]")
            k = _int(e[0], f"{pw}.e[{j}][0]", 0, len(table) - 1)
            failed.append([*table[k], _int(e[1], f"{pw}.e[{j}][1]")])
        read = [k for k in range(len(table)) if mask >> k & 1]
        if "r" in p:
            reading = None if p["r"] is None else _apply_reading(reading, p["r"], f"{pw}.r")
        out.append({"ts_ms": ts,
                    "raw": raw_map([(table[k][0], table[k][1], cur[k]) for k in read]),
                    "read": [list(table[k]) for k in read],
                    "failed": failed,
                    "reading": None if reading is None else
                    {g: dict(x) for g, x in reading.items()},
                    "missed": None})
    return {"id": d.get("id"), "profile": d.get("profile"), "serial": d.get("serial"),
            "polls": out}


def _frequency_v2(f):
    if f is None:
        return None
    _need(isinstance(f, dict), "frequency: not an object")
    t0 = _int(f.get("t0"), "frequency.t0")
    iv = _int(f.get("iv"), "frequency.iv", 1)
    mhz = _int(f.get("mhz"), "frequency.mhz")
    d = f.get("d")
    _need(isinstance(d, list), "frequency.d: not an array")
    samples, missing = [], []
    for k, x in enumerate(d):
        if x is None:
            missing.append(t0 + k * iv)
            continue
        mhz += _int(x, f"frequency.d[{k}]")
        samples.append([t0 + k * iv, mhz / 1000])
    return {"device": f.get("device"), "interval_ms": iv, "samples": samples,
            "missing": missing}


def _delta_column(col, what, n):
    _need(isinstance(col, list) and len(col) == n, f"{what}: not an array of {n}")
    out, last = [], 0
    for i, x in enumerate(col):
        if x is None:
            out.append(None)
            continue
        last += _int(x, f"{what}[{i}]")
        out.append(last)
    return out


def _fcr_v2(f):
    """The FCR activation records: ts_ms, Hz, setpoint W (None: the battery
    was in its own mode), measured battery W (None: unknown)."""
    if f is None:
        return None
    _need(isinstance(f, dict), "fcr: not an object")
    t0 = _int(f.get("t0"), "fcr.t0")
    iv = _int(f.get("iv"), "fcr.iv", 1)
    k = f.get("k")
    _need(isinstance(k, list), "fcr.k: not an array")
    n = len(k)
    mhz = _delta_column(f.get("mhz"), "fcr.mhz", n)
    sp = _delta_column(f.get("sp"), "fcr.sp", n)
    pw = _delta_column(f.get("pw"), "fcr.pw", n)
    recs, slot = [], 0
    for i in range(n):
        slot += _int(k[i], f"fcr.k[{i}]", 0 if i == 0 else 1)
        _need(mhz[i] is not None, f"fcr.mhz[{i}]: null")
        recs.append([t0 + slot * iv, mhz[i] / 1000, sp[i], pw[i]])
    return {"battery": f.get("battery"), "interval_ms": iv, "records": recs,
            "overflow": f.get("overflow", 0)}


def _decode_v1(p):
    devs = []
    dl = p.get("devices", [])
    _need(isinstance(dl, list), "devices: not an array")
    for i, d in enumerate(dl):
        _need(isinstance(d, dict), f"devices[{i}]: not an object")
        raw = d.get("raw", {})
        rd = d.get("readings", {})
        _need(isinstance(raw, dict) and isinstance(rd, dict),
              f"devices[{i}]: raw/readings not objects")
        keys = set(raw) | set(rd)
        _need(all(k.isdigit() for k in keys), f"devices[{i}]: a timestamp key is not a number")
        polls = []
        for ts in sorted(keys, key=int):
            _need(isinstance(raw.get(ts, {}), dict), f"devices[{i}].raw.{ts}: not an object")
            polls.append({"ts_ms": int(ts), "raw": raw.get(ts, {}), "read": None,
                          "failed": None, "reading": rd.get(ts), "missed": None})
        devs.append({"id": d.get("id"), "profile": d.get("profile"),
                     "serial": d.get("serial"), "polls": polls})
    f = p.get("frequency")
    freq = None
    if f is not None:
        _need(isinstance(f, dict) and isinstance(f.get("samples", []), list),
              "frequency: not an object with a samples array")
        freq = {"device": f.get("device"), "interval_ms": f.get("interval_ms"),
                "samples": f.get("samples", []), "missing": []}
    return devs, freq


def decode(p):
    _need(isinstance(p, dict), "payload: not an object")
    if p.get("type") == "gap":
        return dict(p)
    v = p.get("v", 1)
    out = {k: p.get(k) for k in ("seq", "iat", "gateway", "from_ms", "to_ms")}
    out["v"] = v
    out["overflow"] = p.get("overflow")
    if v == 1:
        out["devices"], out["frequency"] = _decode_v1(p)
        return out
    _need(v in VERSIONS, f"v: unknown format version {v!r}")
    from_ms = _int(p.get("from_ms"), "from_ms")
    devs = p.get("devices", [])
    _need(isinstance(devs, list), "devices: not an array")
    out["devices"] = [_device_v2(d, from_ms, i, v) for i, d in enumerate(devs)]
    out["frequency"] = _frequency_v2(p.get("frequency"))
    out["fcr"] = _fcr_v2(p.get("fcr"))
    return out


def jwt_payload(token):
    """The payload object of a compact JWS, without checking its signature."""
    import json
    _need(isinstance(token, str) and token.count(".") == 2, "not a compact JWS")
    try:
        return json.loads(_b64url(token.split(".")[1], "JWS payload"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BatchError(f"JWS payload: {e}") from None


def _unpack_dict(value):
    """The raw token a store.db dicts.data value holds: u32 n | zlib(raw)."""
    import struct
    import zlib
    _need(isinstance(value, (bytes, bytearray)) and len(value) >= 5, "not a stored dictionary")
    try:
        raw = zlib.decompress(value[4:])
    except zlib.error as e:
        raise BatchError(f"stored dictionary: {e}") from None
    _need(len(raw) == struct.unpack(">I", value[:4])[0], "stored dictionary: bad length")
    return raw


def stored_token(value, dicts=None):
    """The token text of a store.db rows.jwt value (src/store/token.h): text
    as is, or a packed BLOB, "EJ1" | u32 n | zlib(raw), or "EJ2" | u32 n |
    u32 id | zlib(raw) primed with dictionary id (its first 32 KiB), raw being
    u16 hlen | header | u32 plen | payload | signature.  dicts maps an id to
    its dicts.data."""
    import struct
    import zlib
    if isinstance(value, str):
        return value
    _need(isinstance(value, (bytes, bytearray)) and value[:3] in (b"EJ1", b"EJ2"),
          "not a stored token")
    n = struct.unpack(">I", value[3:7])[0]
    try:
        if value[:3] == b"EJ1":
            raw = zlib.decompress(value[7:])
        else:
            _need(len(value) >= 11, "stored token: too short")
            did = struct.unpack(">I", value[7:11])[0]
            _need(dicts is not None and did in dicts, f"stored token: no dictionary {did}")
            z = zlib.decompressobj(zdict=_unpack_dict(dicts[did])[:32768])
            raw = z.decompress(value[11:]) + z.flush()
    except zlib.error as e:
        raise BatchError(f"stored token: {e}") from None
    _need(len(raw) == n and n >= 6, "stored token: bad length")
    hl = struct.unpack(">H", raw[:2])[0]
    pl = struct.unpack(">I", raw[2 + hl:6 + hl])[0]
    parts = (raw[2:2 + hl], raw[6 + hl:6 + hl + pl], raw[6 + hl + pl:])
    return ".".join(base64.urlsafe_b64encode(x).rstrip(b"=").decode() for x in parts)


def stored_tokens(path):
    """[(seq, token)] of a store.db's signed rows, in seq order (read-only;
    egwd holds the file exclusively while it runs)."""
    import sqlite3
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        try:
            dicts = dict(db.execute("SELECT id, data FROM dicts"))
        except sqlite3.OperationalError:
            dicts = {}  # a store from before dictionaries
        return [(seq, stored_token(jwt, dicts)) for seq, jwt in
                db.execute("SELECT seq, jwt FROM rows WHERE jwt IS NOT NULL ORDER BY seq")]
    finally:
        db.close()


def summary(dec):
    """A few numbers for people: polls, registers, readings, samples."""
    if "devices" not in dec:
        return {"gap": True}
    return {"v": dec.get("v"),
            "devices": [{"id": d["id"], "polls": len(d["polls"]),
                         "registers_last": len(d["polls"][-1]["raw"]) if d["polls"] else 0,
                         "failed_blocks": sum(len(p["failed"] or []) for p in d["polls"]),
                         "missed_polls": [[p["ts_ms"], p["missed"]] for p in d["polls"]
                                          if p.get("missed") is not None]}
                        for d in dec["devices"]],
            "frequency_samples": len(dec["frequency"]["samples"]) if dec["frequency"] else 0,
            "frequency_missing": len(dec["frequency"]["missing"]) if dec["frequency"] else 0}
