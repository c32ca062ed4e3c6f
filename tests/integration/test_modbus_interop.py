"""egw's Modbus client (through egw-mbread) against an independent server:
pymodbus (Debian's python3-pymodbus), over Modbus TCP, RTU over TCP, and RTU
on a serial line (a socat pseudo-terminal pair).

Known registers are read and decoded exactly (U16, I16, U32 and float32 in
both word orders), writes are checked by reading back with pymodbus's own
client, and exceptions / device identification are compared.

Run: EGW_BUILD=<build dir> /usr/bin/python3 -m unittest tests/integration/test_modbus_interop.py
"""
import logging
import os
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import egwtest as T  # noqa: E402

from pymodbus.client import ModbusTcpClient  # noqa: E402

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "mb_pymodbus_server.py")


def start_server(tc, rtu=False):
    """pymodbus on a TCP port; returns egw-mbread's connection arguments."""
    port = T.free_port()
    argv = [T.PYTHON, SERVER, "--port", port] + (["--rtu-over-tcp"] if rtu else [])
    p = T.Proc(argv, name="pymodbus-server")
    tc.addCleanup(p.stop)
    p.wait_output("ready", timeout=15)
    return ["--host", "127.0.0.1", "--port", port] + (["--rtu-over-tcp"] if rtu else [])


def start_serial_server(tc):
    """pymodbus on one end of a pty pair; returns egw-mbread's arguments for the other."""
    d = T.tempdir(tc, "egw-mbser-")
    a, b = os.path.join(d, "a"), os.path.join(d, "b")
    socat = T.Proc(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"], name="socat")
    tc.addCleanup(socat.stop)
    T.wait_until(lambda: os.path.exists(a) and os.path.exists(b), timeout=10, what="socat ptys")
    p = T.Proc([T.PYTHON, SERVER, "--serial", a, "--baud", 19200], name="pymodbus-serial")
    tc.addCleanup(p.stop)
    p.wait_output("ready", timeout=15)
    return ["--serial", b, "--baud", "19200", "--parity", "N", "--stopbits", "1"]


def mbread(conn, *args, check=True):
    argv = [T.binary("egw-mbread")] + [str(a) for a in conn] + ["--timeout", "2000"]
    argv += [str(a) for a in args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def regs_of(out):
    """{addr: value} from egw-mbread's "<addr> <value>" lines."""
    regs = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) == 2 and p[0].isdigit():
            regs[int(p[0])] = int(p[1], 0)
    return regs


def join(words):
    v = 0
    for w in words:
        v = (v << 16) | w
    return v


class ModbusInterop:
    def setUp(self):
        self.conn = start_server(self)

    def read(self, fc, addr, count):
        r = mbread(self.conn, "--unit", 1, "--fc", fc, "--addr", addr, "--count", count)
        regs = regs_of(r.stdout)
        self.assertEqual(sorted(regs), list(range(addr, addr + count)))
        return [regs[a] for a in range(addr, addr + count)]

    def test_decode_known_values(self):
        r = self.read(3, 0, 10)
        self.assertEqual(r[0], 12345)                                   # U16
        self.assertEqual(struct.unpack(">h", struct.pack(">H", r[1]))[0], -1234)  # I16
        self.assertEqual(join(r[2:4]), 0x12345678)                     # U32, high word first
        self.assertEqual(join(r[4:6][::-1]), 0x12345678)               # U32, low word first
        self.assertEqual(struct.unpack(">f", struct.pack(">I", join(r[6:8])))[0], 230.5)
        self.assertEqual(struct.unpack(">f", struct.pack(">I", join(r[8:10][::-1])))[0], 230.5)

    def test_block_reads_both_tables(self):
        self.assertEqual(self.read(3, 10, 125), [(i * 3 + 7) & 0xFFFF for i in range(10, 135)])
        self.assertEqual(self.read(4, 175, 125), [50000 - i for i in range(175, 300)])
        self.assertEqual(self.read(4, 0, 1), [50000])

    def test_exception_illegal_address(self):
        r = mbread(self.conn, "--unit", 1, "--fc", 3, "--addr", 298, "--count", 5, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("exception 2", r.stderr)

    def test_writes_read_back(self):
        mbread(self.conn, "--unit", 1, "--addr", 200, "--write", "4242")
        mbread(self.conn, "--unit", 1, "--addr", 201, "--write", "1,2,65535")
        self.assertEqual(self.read(3, 200, 4), [4242, 1, 2, 65535])

    def test_repeat(self):
        r = mbread(self.conn, "--unit", 1, "--fc", 4, "--addr", 0, "--count", 20, "--repeat", self.repeat)
        summary = [line for line in r.stdout.splitlines() if line.startswith("# n=")]
        self.assertEqual(len(summary), 1)
        self.assertIn(f"n={self.repeat} ok={self.repeat} err=0", summary[0])


class TestModbusTcp(ModbusInterop, unittest.TestCase):
    repeat = 300

    def test_devid(self):
        r = mbread(self.conn, "--unit", 1, "--devid")
        self.assertIn("object 0: egw-test", r.stdout)
        self.assertIn("object 1: PYMB", r.stdout)
        self.assertIn("object 2: 3.0", r.stdout)

    def test_write_seen_by_pymodbus_client(self):
        mbread(self.conn, "--unit", 1, "--addr", 250, "--write", "7,8,9")
        c = ModbusTcpClient("127.0.0.1", port=int(self.conn[3]), timeout=5)
        self.assertTrue(c.connect())
        self.addCleanup(c.close)
        rr = c.read_holding_registers(250, 3, slave=1)
        self.assertFalse(rr.isError())
        self.assertEqual(rr.registers, [7, 8, 9])

    def test_unknown_unit_times_out_then_next_succeeds(self):
        # pymodbus ignores units it does not serve: egw's client times out
        # and the following request on a fresh process still works.
        r = mbread(self.conn, "--unit", 9, "--fc", 3, "--addr", 0, "--count", 1, "--timeout", 300, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(self.read(3, 0, 1), [12345])


class TestModbusRtuOverTcp(ModbusInterop, unittest.TestCase):
    repeat = 300

    def setUp(self):
        self.conn = start_server(self, rtu=True)


class TestModbusRtuSerial(ModbusInterop, unittest.TestCase):
    repeat = 50  # 19200 baud: ~2 ms a request plus t3.5

    def setUp(self):
        self.conn = start_serial_server(self)


if __name__ == "__main__":
    unittest.main()
