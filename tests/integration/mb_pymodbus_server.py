#!/usr/bin/python3
"""A pymodbus server with known registers, for interop tests and benchmarks.

    mb_pymodbus_server.py --port P [--rtu-over-tcp]
    mb_pymodbus_server.py --serial PATH [--baud N]     (RTU, 8N1)

Debian's `pymodbus.server` command is broken, hence this script.  Prints
"ready <port or path>" once listening.  Holding registers (unit 1, zero-based):
    0      U16 12345
    1      I16 -1234
    2..3   U32 0x12345678 (high word first)      4..5  same, low word first
    6..7   float32 230.5 (high word first)        8..9  same, low word first
    10..   value(i) = (i * 3 + 7) & 0xFFFF, up to address 299
Input registers: value(i) = 50000 - i, addresses 0..299.
Reading past address 299 answers exception 2 (illegal data address).
Device identification: vendor "egw-test", product code "PYMB", revision "3.0".
"""
import argparse
import asyncio
import logging
import struct
import sys

from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext, ModbusSequentialDataBlock
from pymodbus.device import ModbusDeviceIdentification
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.framer.socket_framer import ModbusSocketFramer
from pymodbus.server.async_io import ModbusSerialServer, ModbusTcpServer

N = 300


def words(fmt, value):
    b = struct.pack(">" + fmt, value)
    return list(struct.unpack(">%dH" % (len(b) // 2), b))


def holding():
    regs = [(i * 3 + 7) & 0xFFFF for i in range(N)]
    hi_lo_u32 = words("I", 0x12345678)
    hi_lo_f = words("f", 230.5)
    regs[0:10] = (words("H", 12345) + words("h", -1234) + hi_lo_u32 + hi_lo_u32[::-1]
                  + hi_lo_f + hi_lo_f[::-1])
    return regs


def inputs():
    return [50000 - i for i in range(N)]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int)
    ap.add_argument("--rtu-over-tcp", action="store_true")
    ap.add_argument("--serial")
    ap.add_argument("--baud", type=int, default=19200)
    a = ap.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # per-connection noise
    # The address given to the data block is off by one in pymodbus'
    # non-zero mode; zero_mode keeps protocol address == list index.
    slave = ModbusSlaveContext(
        hr=ModbusSequentialDataBlock(0, holding()),
        ir=ModbusSequentialDataBlock(0, inputs()),
        zero_mode=True)
    ctx = ModbusServerContext(slaves={1: slave}, single=False)
    ident = ModbusDeviceIdentification(info_name={
        "VendorName": "egw-test", "ProductCode": "PYMB", "MajorMinorRevision": "3.0"})
    if a.serial:
        server = ModbusSerialServer(ctx, framer=ModbusRtuFramer, identity=ident, port=a.serial,
                                    baudrate=a.baud, parity="N", stopbits=1, bytesize=8)
        await server.start()
        if server.transport is None:
            sys.exit(f"cannot open {a.serial}")
        print("ready", a.serial, flush=True)
        await server.serve_forever()
        return
    server = ModbusTcpServer(ctx, framer=ModbusRtuFramer if a.rtu_over_tcp else ModbusSocketFramer,
                             identity=ident, address=("127.0.0.1", a.port), allow_reuse_address=True)
    task = asyncio.create_task(server.serve_forever())
    await server.serving
    print("ready", a.port, flush=True)
    await task

if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
