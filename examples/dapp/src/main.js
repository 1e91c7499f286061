// The digit recognizer page: a drawing pad, the DigitRecognizer contract called through viem,
// the label the chain computed (from the transaction's DigitRecognized event), its block, the
// inference record the node keeps for the call, and the per-op trace of that inference.
//
// Query string: rpc (default http://127.0.0.1:8545), contract (a deployed DigitRecognizer; if
// absent the page offers to deploy one), model (model id; default the contract's, or the node's
// 64-in/44-out digit classifier), signer (injected | dev; default injected when window.ethereum
// exists), account (dev account index, default 0). Fragment #trace=<tx hash>&call=<n> opens the
// trace view.
import {
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  getAddress,
  http,
  isAddress,
  keccak256,
  parseAbi,
  parseEventLogs,
  toBytes,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { toDigitsInput } from './digits.js';

const abi = parseAbi([
  'constructor(bytes32 modelId_)',
  'function modelId() view returns (bytes32)',
  'function recognize(uint8[64] pixels) returns (uint8 digit)',
  'event DigitRecognized(bytes32 indexed imageHash, address indexed submitter, uint8 digit, int32 logit)',
  'error PixelOutOfRange(uint256 index, uint8 value)',
  'error UnexpectedOutput(uint256 length)',
  'error UnknownModel(bytes32 modelId)',
]);

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const rpcUrl = params.get('rpc') || 'http://127.0.0.1:8545';
let contract = params.get('contract');
let modelId = params.get('model');
let pixels = null;
let ctx; // { publicClient, walletClient, account, chain }

function setState(state, message = '') {
  document.body.dataset.state = state;
  $('status').textContent = message;
  if (state !== 'error') $('error').textContent = '';
}

function fail(e) {
  document.body.dataset.state = 'error';
  $('error').textContent = e?.shortMessage ? `${e.shortMessage}\n${e.details ?? ''}` : String(e?.message ?? e);
  console.error(e);
}

// --- connection -------------------------------------------------------------------------------

async function connect() {
  $('rpc').textContent = rpcUrl;
  const publicClient = createPublicClient({ transport: http(rpcUrl) });
  const chainId = await publicClient.getChainId();
  const chain = defineChain({
    id: chainId,
    name: 'fixpoint',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  $('chain').textContent = String(chainId);
  const signer = params.get('signer') || (window.ethereum ? 'injected' : 'dev');
  let walletClient, account;
  if (signer === 'injected') {
    if (!window.ethereum) throw new Error('signer=injected but no wallet is injected (window.ethereum)');
    walletClient = createWalletClient({ chain, transport: custom(window.ethereum) });
    [account] = await walletClient.requestAddresses();
    $('account').textContent = `${account} (injected wallet)`;
  } else {
    // The dev chain's prefunded keys are public: keccak256("fixpoint dev account <i>").
    const i = Number(params.get('account') ?? 0);
    account = privateKeyToAccount(keccak256(toBytes(`fixpoint dev account ${i}`)));
    walletClient = createWalletClient({ account, chain, transport: http(rpcUrl) });
    $('account').textContent = `${account.address} (dev account ${i})`;
  }
  return { publicClient, walletClient, account, chain };
}

/** The node's digit classifier: a model with 64 input bytes and 44 output bytes. */
async function findModel() {
  const ids = await ctx.publicClient.request({ method: 'fixpoint_listModels', params: [] });
  for (const id of ids) {
    const info = await ctx.publicClient.request({ method: 'fixpoint_modelInfo', params: [id] });
    if (info && Number(info.inputBytes) === 64 && Number(info.outputBytes) === 44) return id;
  }
  throw new Error('this node holds no 8x8 digit classifier (64 input bytes, 44 output bytes); pass ?model=0x…');
}

async function useContract(address) {
  if (!isAddress(address)) throw new Error(`not an address: ${address}`);
  contract = getAddress(address);
  const code = await ctx.publicClient.getCode({ address: contract });
  if (!code || code === '0x') throw new Error(`no contract at ${contract} on this chain`);
  modelId = await ctx.publicClient.readContract({ address: contract, abi, functionName: 'modelId' });
  $('contract').textContent = contract;
  $('model').textContent = modelId;
  $('deploy-box').hidden = true;
  const url = new URL(location.href);
  url.searchParams.set('contract', contract);
  history.replaceState(null, '', url);
  $('recognize').disabled = pixels === null;
}

async function deploy() {
  setState('deploying', 'deploying DigitRecognizer…');
  const artifact = await (await fetch('./dist/DigitRecognizer.json')).json();
  const hash = await ctx.walletClient.deployContract({
    abi,
    bytecode: artifact.bytecode,
    args: [modelId],
    account: ctx.account,
    chain: ctx.chain,
  });
  const receipt = await ctx.publicClient.waitForTransactionReceipt({ hash, pollingInterval: 250 });
  if (receipt.status !== 'success') throw new Error(`deployment reverted (transaction ${hash})`);
  await useContract(receipt.contractAddress);
  setState('ready', `deployed at ${receipt.contractAddress} in block ${receipt.blockNumber}`);
}

// --- drawing ----------------------------------------------------------------------------------

const pad = $('pad');
const pen = pad.getContext('2d', { willReadFrequently: true });

function setupPad() {
  pen.lineWidth = 32;
  pen.lineCap = 'round';
  pen.lineJoin = 'round';
  pen.strokeStyle = '#000';
  let last = null;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
  };
  pad.addEventListener('pointerdown', (e) => {
    pad.setPointerCapture(e.pointerId);
    last = at(e);
    pen.beginPath();
    pen.arc(last[0], last[1], pen.lineWidth / 2, 0, 2 * Math.PI);
    pen.fill();
    e.preventDefault();
  });
  pad.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = at(e);
    pen.beginPath();
    pen.moveTo(...last);
    pen.lineTo(...p);
    pen.stroke();
    last = p;
  });
  const end = () => {
    if (!last) return;
    last = null;
    sample();
  };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);
  $('clear').addEventListener('click', () => {
    pen.clearRect(0, 0, pad.width, pad.height);
    sample();
  });
}

/** Reads the pad into the 64 values the model takes and shows them. */
function sample() {
  const rgba = pen.getImageData(0, 0, pad.width, pad.height).data;
  const alpha = new Uint8Array(pad.width * pad.height);
  for (let i = 0; i < alpha.length; i++) alpha[i] = rgba[4 * i + 3];
  pixels = toDigitsInput(alpha, pad.width, pad.height);
  const grid = $('grid');
  grid.replaceChildren();
  for (let i = 0; i < 64; i++) {
    const v = pixels ? pixels[i] : 0;
    const cell = document.createElement('div');
    const shade = 255 - Math.round((v * 255) / 16);
    cell.style.background = `rgb(${shade},${shade},${shade})`;
    cell.style.color = v > 8 ? '#fff' : '#1d2430';
    cell.textContent = String(v);
    grid.append(cell);
  }
  $('pixels').textContent = pixels ? JSON.stringify(pixels) : '';
  $('recognize').disabled = pixels === null || !contract;
}

// --- recognition ------------------------------------------------------------------------------

async function recognize() {
  const sent = pixels.slice();
  $('recognize').disabled = true;
  for (const id of ['label', 'block', 'tx', 'logit', 'record-model', 'record-input', 'record-output', 'record-gas', 'record-call'])
    $(id).textContent = '–';
  setState('sending', 'sending the transaction…');
  const hash = await ctx.walletClient.writeContract({
    address: contract,
    abi,
    functionName: 'recognize',
    args: [sent],
    account: ctx.account,
    chain: ctx.chain,
  });
  $('tx').textContent = hash;
  $('result').hidden = false;
  setState('mining', 'waiting for the receipt…');
  const receipt = await ctx.publicClient.waitForTransactionReceipt({ hash, pollingInterval: 250 });
  if (receipt.status !== 'success') throw new Error(`transaction ${hash} reverted`);
  const [event] = parseEventLogs({ abi, logs: receipt.logs, eventName: 'DigitRecognized' }).filter(
    (l) => l.address.toLowerCase() === contract.toLowerCase(),
  );
  if (!event) throw new Error(`no DigitRecognized event in the receipt of ${hash}`);
  $('label').textContent = String(event.args.digit);
  $('logit').textContent = String(event.args.logit);
  $('block').textContent = String(receipt.blockNumber);
  const records = await ctx.publicClient.request({ method: 'fixpoint_transactionRecords', params: [hash] });
  const record = (records ?? []).find((r) => r.modelId.toLowerCase() === modelId.toLowerCase()) ?? records?.[0];
  if (!record) throw new Error(`the node returned no inference record for ${hash}`);
  $('record-model').textContent = record.modelId;
  $('record-input').textContent = record.inputHash;
  $('record-output').textContent = record.outputHash;
  $('record-gas').textContent = String(BigInt(record.gasUsed));
  $('record-call').textContent = String(BigInt(record.callIndex));
  $('trace-link').href = traceHref(hash, BigInt(record.callIndex));
  $('record-box').hidden = false;
  setState('done', `block ${receipt.blockNumber}: the model says ${event.args.digit}`);
  $('recognize').disabled = false;
}

// --- per-op trace -----------------------------------------------------------------------------

function traceHref(tx, call) {
  return `${location.search}#trace=${tx}&call=${call}`;
}

/** True if a viem error (or its causes) is JSON-RPC -32601 method not found. */
function methodNotFound(e) {
  for (let c = e; c; c = c.cause) if (c.code === -32601) return true;
  return false;
}

const TRACE_COLUMNS = ['index', 'op', 'shape', 'dtype', 'outputHash', 'work', 'gas'];

async function showTrace(tx, call) {
  $('main-view').hidden = true;
  $('trace-view').hidden = false;
  $('trace-tx').textContent = tx;
  $('trace-call').textContent = String(call);
  $('trace-summary').hidden = true;
  $('trace-table').hidden = true;
  $('trace-message').textContent = 'loading…';
  document.body.dataset.trace = 'loading';
  let trace;
  try {
    trace = await ctx.publicClient.request({ method: 'fixpoint_traceInference', params: [{ tx, call: Number(call) }] });
  } catch (e) {
    if (methodNotFound(e)) {
      $('trace-message').textContent =
        `This node does not serve fixpoint_traceInference (JSON-RPC -32601, method not found): ` +
        `it runs a fixpoint version without per-op traces. The inference record is still ` +
        `checkable: re-run the model on the same input and compare the output hash.`;
      document.body.dataset.trace = 'unavailable';
    } else {
      $('trace-message').textContent = `fixpoint_traceInference failed: ${e.shortMessage ?? e.message}`;
      document.body.dataset.trace = 'error';
    }
    return;
  }
  if (!trace) {
    $('trace-message').textContent = `no inference ${call} in transaction ${tx}`;
    document.body.dataset.trace = 'error';
    return;
  }
  $('trace-model').textContent = trace.modelId;
  $('trace-input').textContent = trace.inputHash;
  $('trace-output').textContent = trace.outputHash;
  $('trace-summary').hidden = false;
  const ops = trace.ops ?? [];
  // The documented columns first, then whatever else the node reports per op.
  const extra = [...new Set(ops.flatMap((o) => Object.keys(o)))].filter((k) => !TRACE_COLUMNS.includes(k));
  const columns = [...TRACE_COLUMNS, ...extra];
  const head = document.createElement('tr');
  for (const c of columns) head.append(Object.assign(document.createElement('th'), { textContent: c }));
  $('trace-table').tHead.replaceChildren(head);
  const body = $('trace-table').tBodies[0];
  body.replaceChildren();
  for (const o of ops) {
    const tr = document.createElement('tr');
    for (const c of columns) {
      const v = o[c];
      const text =
        v === undefined || v === null
          ? ''
          : c === 'shape' && Array.isArray(v)
            ? v.join('×')
            : c === 'work' && typeof v === 'object'
              ? Object.entries(v)
                  .filter(([, n]) => n)
                  .map(([k, n]) => `${k} ${n}`)
                  .join(', ')
              : typeof v === 'object'
                ? JSON.stringify(v)
                : String(v);
      tr.append(Object.assign(document.createElement('td'), { textContent: text }));
    }
    body.append(tr);
  }
  $('trace-table').hidden = false;
  $('trace-message').textContent = `${ops.length} ops`;
  document.body.dataset.trace = 'done';
}

function route() {
  const h = new URLSearchParams(location.hash.slice(1));
  const tx = h.get('trace');
  if (tx) {
    showTrace(tx, h.get('call') ?? '0').catch(fail);
  } else {
    $('trace-view').hidden = true;
    $('main-view').hidden = false;
  }
}

// --- start ------------------------------------------------------------------------------------

async function main() {
  $('boot').hidden = true;
  setupPad();
  sample();
  ctx = await connect();
  if (contract) {
    await useContract(contract);
  } else {
    modelId = modelId || (await findModel());
    $('model').textContent = modelId;
    $('deploy-box').hidden = false;
  }
  $('recognize').addEventListener('click', () => recognize().catch(fail));
  $('deploy').addEventListener('click', () => deploy().catch(fail));
  $('use-contract').addEventListener('click', () => useContract($('contract-input').value.trim()).catch(fail));
  $('trace-back').addEventListener('click', (e) => {
    e.preventDefault();
    history.pushState(null, '', location.pathname + location.search);
    route();
  });
  window.addEventListener('hashchange', route);
  route();
  setState('ready', contract ? 'draw a digit, then recognize it on chain' : 'deploy or choose a contract');
}

main().catch(fail);
