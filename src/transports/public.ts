// The public names of src/transports; src/index.ts re-exports this list.
export {};
export type { BaseTransport, ReadTransport, WriteTransport, Transport, DatagramTransport, ServerLike } from './transports.ts';
