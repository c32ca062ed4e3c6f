// Read registers with the npm package modbus-serial, an independent Modbus
// client used by egw's tests (tests/integration/test_sim_interop.py).
//
//   node mb_read.mjs tcp HOST PORT UNIT FC ADDR COUNT
//   node mb_read.mjs rtu PATH BAUD UNIT FC ADDR COUNT
//
// FC is 3 (holding) or 4 (input).  Prints {"data":[...]} on success, or
// {"error":"...","code":N} (Modbus exception code, when there is one) and
// exits 1.
import ModbusRTU from "modbus-serial";

const [mode, where, portOrBaud, unit, fc, addr, count] = process.argv.slice(2);
const client = new ModbusRTU();

async function main() {
  if (mode === "tcp") {
    await client.connectTCP(where, { port: Number(portOrBaud) });
  } else if (mode === "rtu") {
    await client.connectRTUBuffered(where, { baudRate: Number(portOrBaud) });
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  client.setID(Number(unit));
  client.setTimeout(2000);
  const read = Number(fc) === 4 ? client.readInputRegisters : client.readHoldingRegisters;
  const res = await read.call(client, Number(addr), Number(count));
  return res.data;
}

main()
  .then((data) => {
    process.stdout.write(JSON.stringify({ data }) + "\n");
    client.close(() => process.exit(0));
  })
  .catch((err) => {
    process.stdout.write(JSON.stringify({ error: String(err.message || err),
                                          code: err.modbusCode ?? null }) + "\n");
    try {
      client.close(() => process.exit(1));
    } catch (e) {
      process.exit(1);
    }
    setTimeout(() => process.exit(1), 500);
  });
