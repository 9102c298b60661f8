// The public names of src/protocols; src/index.ts re-exports this list.
export { BaseProtocol, Protocol, BufferedProtocol, DatagramProtocol, MessageProtocol, SubprocessProtocol } from './protocols.ts';
export type { DatagramAddress } from './protocols.ts';
