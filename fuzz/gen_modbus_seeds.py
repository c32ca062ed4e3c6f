#!/usr/bin/python3
"""Write the seed inputs of the four Modbus fuzzers into fuzz/corpus/mb_*/.

Seeds are valid frames of every function code, exceptions, and a few
deliberately broken ones (bad CRC, bad length, stale tid, truncated), so the
fuzzers start from every parser branch.  Response seeds carry the 9-byte
request selector read by fuzz/mb_fuzz_request.h.  Re-running rewrites the
seed-* files; inputs libFuzzer found are kept.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FCS = [3, 4, 6, 16, 43]


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu(unit, pdu):
    body = bytes([unit]) + pdu
    return body + struct.pack("<H", crc16(body))


def tcp(tid, unit, pdu, proto=0, length=None):
    if length is None:
        length = len(pdu) + 1
    return struct.pack(">HHHB", tid, proto, length, unit) + pdu


def requests():
    """(unit, pdu) pairs of valid requests."""
    out = []
    for fc in (3, 4):
        for addr, count in ((0, 1), (40000, 10), (30775, 2), (0xFFFF, 125)):
            out.append((1, struct.pack(">BHH", fc, addr, count)))
    out.append((1, struct.pack(">BHH", 6, 0x1001, 0xBEEF)))
    out.append((247, struct.pack(">BHH", 6, 0, 0)))
    for count in (1, 2, 60, 123):
        vals = [(i * 7919) & 0xFFFF for i in range(count)]
        out.append((3, struct.pack(">BHHB", 16, 0x2000, count, 2 * count) + struct.pack(">%dH" % count, *vals)))
    for code, obj in ((1, 0), (2, 0), (3, 0x80), (4, 1)):
        out.append((1, bytes([43, 14, code, obj])))
    return out


def bad_requests():
    return [
        (1, struct.pack(">BHH", 3, 0, 0)),        # count 0
        (1, struct.pack(">BHH", 4, 0, 126)),      # count 126
        (1, bytes([5, 0, 1, 0xFF, 0])),           # unsupported fc
        (1, bytes([16, 0, 0, 0, 2, 3, 0, 1, 0])), # byte count mismatch
        (1, bytes([43, 13, 1, 0])),               # other MEI
        (1, bytes([43, 14, 9, 0])),               # bad devid code
        (1, bytes([3, 0, 0, 0, 1, 0])),           # trailing byte
    ]


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.unlink(os.path.join(d, f))
    for i, s in enumerate(seeds):
        with open(os.path.join(d, "seed-%03d" % i), "wb") as f:
            f.write(s)


def selector(fc, unit=1, tid=0, addr=0, count=1, value=0, devid_code=1, obj=0):
    """The 9-byte prefix that makes mb_fuzz_request() build this request."""
    sel = FCS.index(fc)
    if fc in (3, 4):
        c = count - 1
    elif fc == 16:
        c = count - 1
    elif fc == 43:
        c = devid_code - 1
        value = obj << 8
    else:
        c = 0
    return struct.pack(">BBHHBH", sel, unit, tid, addr, c, value)


def responses():
    """(selector, unit, tid, pdu) of valid and broken responses."""
    out = []
    for fc in (3, 4):
        for count in (1, 2, 10, 125):
            regs = [(0xA000 + i * 3) & 0xFFFF for i in range(count)]
            pdu = struct.pack(">BB", fc, 2 * count) + struct.pack(">%dH" % count, *regs)
            out.append((selector(fc, tid=7, addr=100, count=count), 1, 7, pdu))
        out.append((selector(fc, tid=7, count=2), 1, 7, struct.pack(">BB", fc, 2) + b"\x00\x01"))  # short
        out.append((selector(fc, tid=7, count=1), 1, 7, bytes([fc | 0x80, 2])))                  # exception
    out.append((selector(6, tid=9, addr=0x1001, value=0xBEEF), 1, 9, struct.pack(">BHH", 6, 0x1001, 0xBEEF)))
    out.append((selector(6, tid=9, addr=0x1001, value=0xBEEF), 1, 9, struct.pack(">BHH", 6, 0x1001, 0xBEEE)))
    out.append((selector(16, tid=10, addr=0x2000, count=3), 1, 10, struct.pack(">BHH", 16, 0x2000, 3)))
    out.append((selector(16, tid=10, count=3), 1, 10, bytes([0x90, 4])))
    objs = [(0, b"egw"), (1, b"SIM-1"), (2, b"1.0.0")]
    body = b"".join(bytes([i, len(v)]) + v for i, v in objs)
    out.append((selector(43, tid=11, devid_code=1), 1, 11, bytes([43, 14, 1, 0x81, 0, 0, 3]) + body))
    out.append((selector(43, tid=11, devid_code=2), 1, 11, bytes([43, 14, 2, 0x82, 0xFF, 5, 3]) + body))
    out.append((selector(43, tid=11, devid_code=4, obj=1), 1, 11, bytes([43, 14, 4, 0x81, 0, 0, 1, 1, 5]) + b"SIM-1"))
    out.append((selector(43, tid=11, devid_code=1), 1, 11, bytes([43, 14, 1, 0x81, 0, 0, 2, 0, 9, 65])))
    out.append((selector(43, tid=11, devid_code=1), 1, 11, bytes([0xAB, 1])))
    return out


def chunk(frame, flags=1):
    return bytes([flags, len(frame)]) + frame


def client_stream():
    """Inputs of fuzz_mb_client_stream.c: [fc bit][count-1] + one chunk per
    request (read, write 16 of 2 registers at 10, devid basic)."""
    objs = b"".join(bytes([i, len(v)]) + v for i, v in enumerate([b"egw", b"FZ", b"1"]))
    devid = tcp(0, 1, bytes([43, 14, 1, 0x81, 0, 0, 3]) + objs)
    wr = tcp(0, 1, struct.pack(">BHH", 16, 10, 2))
    out = []
    for fc_bit, count in ((0, 1), (1, 4), (0, 100)):
        fc = 4 if fc_bit else 3
        rd = tcp(0, 1, struct.pack(">BB", fc, 2 * count) + bytes(2 * count))
        out.append(bytes([fc_bit, count - 1]) + chunk(rd) + chunk(wr) + chunk(devid))
    rd = tcp(0, 1, struct.pack(">BB", 3, 2) + b"\x12\x34")
    out += [
        bytes([0, 0]) + chunk(rd, 3) + chunk(wr) + chunk(devid),          # stale answer first
        bytes([0, 0]) + chunk(rd + rd, 1) + chunk(wr) + chunk(devid),     # two answers at once
        bytes([0, 0]) + chunk(b"\x01\x02\x00\x07\xff\xff", 0) + chunk(wr) + chunk(devid),
        bytes([0, 0]) + chunk(rd[:5]) + chunk(wr) + chunk(devid),         # truncated
        bytes([0, 0]) + chunk(tcp(0, 1, bytes([0x83, 2]))) + chunk(wr),   # exception, no devid
        bytes([0, 0]),                                                     # silent server
    ]
    return out


def main():
    reqs = requests() + bad_requests()
    tcp_req = [tcp(i + 1, u, p) for i, (u, p) in enumerate(reqs)]
    tcp_req += [
        tcp(1, 1, struct.pack(">BHH", 3, 0, 1), proto=1),       # protocol id
        tcp(1, 1, struct.pack(">BHH", 3, 0, 1), length=1),      # length too small
        tcp(1, 1, struct.pack(">BHH", 3, 0, 1))[:9],            # truncated
        tcp(1, 1, struct.pack(">BHH", 3, 0, 1)) * 2,            # two frames
    ]
    write("mb_tcp_request", tcp_req)

    rtu_req = [rtu(u, p) for u, p in reqs]
    good = rtu(1, struct.pack(">BHH", 3, 0, 10))
    rtu_req += [good[:-1] + bytes([good[-1] ^ 1]), good[:5], rtu(1, bytes([7])), good + good,
                rtu(1, bytes([16, 0, 0, 0, 125, 250]))]
    write("mb_rtu_request", rtu_req)

    tcp_resp, rtu_resp = [], []
    for sel, unit, tid, pdu in responses():
        tcp_resp.append(sel + tcp(tid, unit, pdu))
        rtu_resp.append(sel + rtu(unit, pdu))
    sel, unit, tid, pdu = responses()[0]
    tcp_resp += [
        sel + tcp(tid - 1, unit, pdu) + tcp(tid, unit, pdu),    # stale tid first
        sel + tcp(tid, unit + 1, pdu),                          # wrong unit
        sel + tcp(tid, unit, pdu, proto=3),
        sel + tcp(tid, unit, pdu, length=300),
        sel + tcp(tid, unit, pdu)[:8],
    ]
    frame = rtu(unit, pdu)
    rtu_resp += [
        sel + frame[:-1] + bytes([frame[-1] ^ 0x55]),           # bad CRC
        sel + rtu(unit + 1, pdu),                               # wrong unit
        sel + b"\x00\xff" + frame,                              # noise before
        sel + frame[:3],
        sel + bytes([unit, 3, 0xFF, 0]),                        # byte count too big
    ]
    write("mb_tcp_response", tcp_resp)
    write("mb_rtu_response", rtu_resp)
    write("mb_client_stream", client_stream())


if __name__ == "__main__":
    main()
