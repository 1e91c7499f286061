// A dapp-side client against a running fixpoint node, with viem as a dapp would use it:
// read the chain, call the inference precompile (eth_call), send a transaction that runs the
// model on chain, wait for its receipt and fetch the inference record over fixpoint_* RPC.
// Usage: RPC_URL=... PRIVATE_KEY=... MODEL_ID=... INPUT_HEX=... node tests/e2e/viem.mjs
import { createPublicClient, createWalletClient, defineChain, http, parseAbi, keccak256 } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

const { RPC_URL, PRIVATE_KEY, MODEL_ID, INPUT_HEX } = process.env;
const INFERENCE = '0x0000000000000000000000000000000000000F01';
const abi = parseAbi([
  'function infer(bytes32 modelId, bytes input) returns (bytes)',
  'function classify(bytes32 modelId, bytes input) returns (uint256)',
  'error UnknownModel(bytes32 modelId)',
]);

const publicClient = createPublicClient({ transport: http(RPC_URL) });
const chainId = await publicClient.getChainId();
const chain = defineChain({ id: chainId, name: 'fixpoint', nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [RPC_URL] } } });
const account = privateKeyToAccount(PRIVATE_KEY);
const wallet = createWalletClient({ account, chain, transport: http(RPC_URL) });

const label = await publicClient.readContract({ address: INFERENCE, abi, functionName: 'classify', args: [MODEL_ID, INPUT_HEX] });
const { result: packed } = await publicClient.simulateContract({ address: INFERENCE, abi, functionName: 'infer', args: [MODEL_ID, INPUT_HEX], account });
const hash = await wallet.writeContract({ address: INFERENCE, abi, functionName: 'infer', args: [MODEL_ID, INPUT_HEX] });
const receipt = await publicClient.waitForTransactionReceipt({ hash });
const records = await publicClient.request({ method: 'fixpoint_transactionRecords', params: [hash] });
let unknownError = '';
try {
  await publicClient.readContract({ address: INFERENCE, abi, functionName: 'classify', args: ['0x' + '22'.repeat(32), INPUT_HEX] });
} catch (e) {
  unknownError = e.cause?.data?.errorName ?? e.shortMessage;
}
const balance = await publicClient.getBalance({ address: account.address });
console.log(JSON.stringify({
  chainId,
  label: label.toString(),
  outputHash: keccak256(packed),
  status: receipt.status,
  recordOutputHash: records[0]?.outputHash,
  unknownError,
  balancePositive: balance > 0n,
}));
