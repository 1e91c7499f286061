// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixpoint} from "../Fixpoint.sol";

/// @title A shared story that anyone extends, each turn a few words of theirs and a few of a
/// language model's, written inside the transaction and re-executed by every validator.
/// @notice The model is a causal byte-level model (docs/model-format.md §9), e.g. the tiny GPT
/// of `fixpoint-model gpt`. Its continuation is a pure function of the model and the story's
/// tail, so every node writes the same words; each turn is recorded with its provenance (the
/// model id is fixed at deployment, and the inference record names the prompt and the text).
contract StoryBook {
    /// One turn of the story: who wrote it, and where their words and the model's start.
    struct Turn {
        address author;
        uint64 blockNumber;
        uint32 wordsAt;
        uint32 modelAt;
        uint32 end;
    }

    /// The registered model that writes.
    bytes32 public immutable modelId;
    /// How many bytes of the story's tail the model reads (its prompt).
    uint32 public immutable promptBytes;
    /// Most bytes the model may add per turn (prompt + new bytes fit the model's window).
    uint32 public immutable maxNewBytes;
    /// Most bytes an author may add per turn.
    uint32 public constant MAX_WORDS = 64;

    /// The story so far.
    bytes public story;
    /// Every turn, in order.
    Turn[] public turns;

    /// A turn was added: the author's words, then the model's.
    event Extended(uint256 indexed turn, address indexed author, bytes words, bytes continuation);

    /// The author's words are longer than `MAX_WORDS`.
    error TooManyWords(uint256 length, uint256 max);
    /// More new bytes than the model's window allows per turn.
    error TooManyNewBytes(uint32 asked, uint32 max);

    /// A story starting with `opening`, continued by `modelId_` reading `promptBytes_` bytes of
    /// tail and adding at most `maxNewBytes_` per turn.
    constructor(bytes32 modelId_, bytes memory opening, uint32 promptBytes_, uint32 maxNewBytes_) {
        modelId = modelId_;
        story = opening;
        promptBytes = promptBytes_;
        maxNewBytes = maxNewBytes_;
    }

    /// Appends `words` (may be empty), then `newBytes` bytes the model writes after them.
    function extend(bytes calldata words, uint32 newBytes) external returns (bytes memory continuation) {
        if (words.length > MAX_WORDS) revert TooManyWords(words.length, MAX_WORDS);
        if (newBytes > maxNewBytes) revert TooManyNewBytes(newBytes, maxNewBytes);
        uint32 wordsAt = uint32(story.length);
        story = bytes.concat(story, words);
        uint32 modelAt = uint32(story.length);
        continuation = Fixpoint.INFERENCE.generate(modelId, tail(), newBytes);
        story = bytes.concat(story, continuation);
        turns.push(Turn(msg.sender, uint64(block.number), wordsAt, modelAt, uint32(story.length)));
        emit Extended(turns.length - 1, msg.sender, words, continuation);
    }

    /// What the model would write next, without writing it (eth_call).
    function preview(bytes calldata words, uint32 newBytes) external view returns (bytes memory) {
        bytes memory s = bytes.concat(story, words);
        return _generate(_tail(s), newBytes);
    }

    /// The last `promptBytes` bytes of the story (all of it while shorter).
    function tail() public view returns (bytes memory) {
        return _tail(story);
    }

    /// Number of turns so far.
    function turnCount() external view returns (uint256) {
        return turns.length;
    }

    function _tail(bytes memory s) private view returns (bytes memory t) {
        uint256 n = s.length < promptBytes ? s.length : promptBytes;
        t = new bytes(n);
        for (uint256 i = 0; i < n; i++) {
            t[i] = s[s.length - n + i];
        }
    }

    /// `generate` under STATICCALL (views may call the precompile: it writes no state).
    function _generate(bytes memory prompt, uint32 newBytes) private view returns (bytes memory) {
        (bool ok, bytes memory ret) = address(Fixpoint.INFERENCE)
            .staticcall(abi.encodeCall(Fixpoint.INFERENCE.generate, (modelId, prompt, newBytes)));
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return abi.decode(ret, (bytes));
    }
}
