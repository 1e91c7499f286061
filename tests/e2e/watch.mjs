// A dapp watching the chain with viem while transactions land: a DigitRecognizer's events, new
// blocks and pending transactions, over WebSocket (eth_subscribe) and over HTTP (filters:
// eth_newFilter / eth_newBlockFilter / eth_newPendingTransactionFilter + eth_getFilterChanges).
// Prints one JSON line with what each watcher saw; node/tests/watch.rs checks it against the
// receipts. Usage: RPC_URL=http://… PRIVATE_KEY=0x… CONTRACT=0x… PIXELS='[…64 numbers…]'
// COUNT=3 node tests/e2e/watch.mjs
import { createPublicClient, createWalletClient, defineChain, http, webSocket, parseAbi } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

const { RPC_URL, PRIVATE_KEY, CONTRACT, PIXELS, COUNT } = process.env;
const count = Number(COUNT ?? 3);
const pixels = JSON.parse(PIXELS);
const abi = parseAbi([
  'event DigitRecognized(bytes32 indexed imageHash, address indexed submitter, uint8 digit, int32 logit)',
  'function recognize(uint8[64] pixels) returns (uint8 digit)',
]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const poller = createPublicClient({ transport: http(RPC_URL), pollingInterval: 100 });
const chainId = await poller.getChainId();
const chain = defineChain({
  id: chainId,
  name: 'fixpoint',
  nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
  rpcUrls: { default: { http: [RPC_URL], webSocket: [RPC_URL.replace('http://', 'ws://')] } },
});
const ws = createPublicClient({ chain, transport: webSocket(RPC_URL.replace('http://', 'ws://')) });
const wallet = createWalletClient({ account: privateKeyToAccount(PRIVATE_KEY), chain, transport: http(RPC_URL) });

const seen = { wsLogs: [], httpLogs: [], wsHeads: [], wsPending: [], httpPending: [] };
const log = (l) => ({ tx: l.transactionHash, block: Number(l.blockNumber), digit: Number(l.args.digit) });
const errors = [];
const onError = (where) => (e) => errors.push(`${where}: ${e.shortMessage ?? e.message}`);
const unwatch = [
  ws.watchContractEvent({ address: CONTRACT, abi, eventName: 'DigitRecognized', onLogs: (ls) => seen.wsLogs.push(...ls.map(log)), onError: onError('ws logs') }),
  poller.watchContractEvent({ address: CONTRACT, abi, eventName: 'DigitRecognized', poll: true, onLogs: (ls) => seen.httpLogs.push(...ls.map(log)), onError: onError('http logs') }),
  ws.watchBlocks({ onBlock: (b) => seen.wsHeads.push({ number: Number(b.number), hash: b.hash }), onError: onError('ws heads') }),
  ws.watchPendingTransactions({ onTransactions: (hs) => seen.wsPending.push(...hs), onError: onError('ws pending') }),
  poller.watchPendingTransactions({ poll: true, onTransactions: (hs) => seen.httpPending.push(...hs), onError: onError('http pending') }),
];
// Filters by hand too: a block filter, and an event filter read whole at the end.
const blockFilter = await poller.createBlockFilter();
const from = await poller.getBlockNumber();
const eventFilter = await poller.createContractEventFilter({ address: CONTRACT, abi, eventName: 'DigitRecognized', fromBlock: from });
await sleep(1000); // subscriptions and the first polls are in place

const txs = [];
for (let i = 0; i < count; i++) {
  const hash = await wallet.writeContract({ address: CONTRACT, abi, functionName: 'recognize', args: [pixels] });
  const receipt = await poller.waitForTransactionReceipt({ hash });
  txs.push({ tx: hash, block: Number(receipt.blockNumber), blockHash: receipt.blockHash, status: receipt.status });
}
const deadline = Date.now() + 20000;
const done = () =>
  seen.wsLogs.length >= count && seen.httpLogs.length >= count && txs.every((t) => seen.wsHeads.some((h) => h.number >= t.block)) &&
  txs.every((t) => seen.wsPending.includes(t.tx) && seen.httpPending.includes(t.tx));
while (!done() && Date.now() < deadline) await sleep(100);
const filterBlocks = await poller.getFilterChanges({ filter: blockFilter });
const filterLogs = (await poller.getFilterLogs({ filter: eventFilter })).map(log);
const uninstalled = await poller.uninstallFilter({ filter: eventFilter });
let afterUninstall = '';
try {
  await poller.getFilterChanges({ filter: eventFilter });
} catch (e) {
  afterUninstall = e.details ?? e.shortMessage;
}
unwatch.forEach((u) => u());
// Heads and pending hashes only as far as the checks need them (a validator makes many blocks).
const last = Math.max(...txs.map((t) => t.block));
seen.wsHeads = seen.wsHeads.filter((h) => h.number <= last);
const ours = (hs) => hs.filter((h) => txs.some((t) => t.tx === h));
seen.wsPending = ours(seen.wsPending);
seen.httpPending = ours(seen.httpPending);
const report = JSON.stringify({ txs, ...seen, filterBlocks, filterLogs, uninstalled, afterUninstall, errors });
process.stdout.write(report + '\n', () => process.exit(0));
