/* An emulated Microchip ATECC608 as seen on its I2C bus, written from the
 * public documentation of the CryptoAuthentication I2C protocol (ATECC508A
 * full datasheet, ATECC608A/B datasheet summaries).  Test equipment: it sits
 * under the unchanged cryptoauthlib Linux I2C HAL through atecc_shim.c and is
 * never linked into egwd.
 *
 * The bus, one transaction at a time (addresses are 7-bit):
 *   - a write to address 0x00 is the wake pulse (SDA held low for the address
 *     byte): a sleeping or idle chip wakes, its output buffer holds the wake
 *     status 04 11 33 43, and the watchdog starts (1.3 s).  Nobody ACKs it.
 *   - a write to the chip's address starts with the word-address byte: 0x00
 *     reset (the read pointer goes back to the start of the output buffer),
 *     0x01 sleep, 0x02 idle, 0x03 command (count, opcode, param1, param2 (LE),
 *     data, CRC-16).
 *   - a read returns the output buffer from the read pointer on.
 *   - asleep, idle or busy executing a command, the chip NACKs its address
 *     (the call returns -ENXIO, as the Linux i2c-dev driver does).
 * Packets are count (itself, data and CRC included) + data + CRC-16 over
 * count and data: polynomial 0x8005, each byte fed LSB first, register
 * starting at 0, sent low byte first.  Status packets are 4 bytes: 0x00 ok,
 * 0x01 CheckMac miscompare, 0x03 parse error, 0x0F execution error, 0x11
 * after wake, 0xEE watchdog about to expire, 0xFF CRC or count error.
 *
 * Commands: Info (revision, KeyValid), Read and Write (config, OTP and data
 * zones, 4 or 32 bytes, clear text only), Lock (config, data, one slot),
 * GenKey (create a P-256 private key in a slot, or compute its public key),
 * Nonce (random with NumIn, or pass-through of 32/64 bytes into TempKey,
 * the message digest buffer or the alternate key buffer), Sign (external
 * message from TempKey or the message digest buffer), Random and SHA
 * (SHA-256 start, update, end).  Anything else is a parse error.  Rules
 * follow the configuration zone: SlotConfig (IsSecret, EncryptRead,
 * ReadKey bit 0 = external signatures, WriteConfig: 0 = always, bit 1 =
 * GenKey may replace the key), KeyConfig (Private, KeyType 4 = P-256,
 * Lockable), LockValue (86), LockConfig (87), SlotLocked (88-89).
 * Reads of the data and OTP zones, Sign, and writes of data slots after
 * the data zone is locked need the zones locked as the datasheet says;
 * GenKey needs the configuration zone locked.  Slot locks skip the summary
 * CRC (a private key's slot cannot be summed by the host).
 *
 * State: <dir>/chip holds the persistent part (zones, keys); it is created
 * blank on first use (configuration unlocked, random serial 01 23 .. EE,
 * revision 00 00 60 03, address 0x60) and re-read at every wake (from sleep
 * or idle), so several processes share one chip.  <dir>/faults, re-read on every transaction,
 * holds words that break the line:
 *   absent      the chip NACKs everything (unplugged)
 *   nowake      the wake pulse is ignored
 *   crc-in      commands arrive corrupted (the chip answers 0xFF)
 *   crc-out     responses are corrupted on the way back
 *   busy        the chip never finishes a command (NACKs until its watchdog)
 *   slow        commands take 2 s: the watchdog puts the chip to sleep
 *               before the result can be read
 *   watchdog=MS a shorter watchdog (0xEE for commands that do not fit)
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct atecc_emu;

#define ATECC_EMU_ADDR 0x60

/* Opens the chip kept in dir (created blank if absent).  Returns 0, -ENOMEM
 * or -errno. */
int atecc_emu_open(const char *dir, struct atecc_emu **ret);
/* Accepts NULL. */
void atecc_emu_close(struct atecc_emu *e);
/* One write transaction to 7-bit address addr at monotonic time now_us.
 * Returns 0 (ACKed) or -ENXIO (NACK). */
int atecc_emu_write(struct atecc_emu *e, unsigned addr, const uint8_t *buf, size_t n,
		    uint64_t now_us);
/* One read transaction.  Returns 0 with n bytes in ret_buf, or -ENXIO. */
int atecc_emu_read(struct atecc_emu *e, unsigned addr, uint8_t *ret_buf, size_t n, uint64_t now_us);
/* The CRC-16 of the packets. */
void atecc_emu_crc(const uint8_t *data, size_t n, uint8_t ret_crc[2]);
