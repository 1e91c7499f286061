// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Base} from "./Base.sol";
import {MockInference} from "./MockInference.sol";
import {Fixpoint} from "../src/Fixpoint.sol";
import {IInference} from "../src/IInference.sol";
import {DigitRecognizer} from "../src/examples/DigitRecognizer.sol";
import {ScreeningDesk} from "../src/examples/ScreeningDesk.sol";
import {StoryBook} from "../src/examples/StoryBook.sol";

contract ExamplesTest is Base {
    MockInference mock;
    DigitRecognizer digits;
    ScreeningDesk desk;

    function setUp() public {
        mock = new MockInference();
        vm.etch(address(Fixpoint.INFERENCE), address(mock).code);
        digits = new DigitRecognizer(mock.DIGITS());
        desk = new ScreeningDesk(mock.TREES());
    }

    function image(uint8 fill, uint256 n) internal pure returns (uint8[64] memory px) {
        for (uint256 i = 0; i < n; i++) {
            px[i] = fill;
        }
    }

    function test_recognize_records_and_emits() public {
        uint8[64] memory px = image(1, 7); // sum 7 -> label 7
        vm.prank(address(0xBEEF));
        uint8 d = digits.recognize(px);
        assertEq(d, 7, "digit");
        assertEq(digits.recorded(), 1, "count");
        bytes memory packed = digits.pack(px);
        (address who, uint8 digit, int32 logit, uint64 blockNumber) = digits.predictions(keccak256(packed));
        assertTrue(who == address(0xBEEF), "submitter");
        assertEq(digit, 7, "stored digit");
        assertEq(logit, 100, "stored logit");
        assertEq(blockNumber, block.number, "block");
    }

    function test_predict_is_view_and_matches() public view {
        (uint8 d, int32 logit) = digits.predict(image(3, 5)); // 15 -> 5
        assertEq(d, 5, "digit");
        assertEq(logit, 100, "logit");
    }

    function test_pixels_above_16_are_rejected() public {
        uint8[64] memory px = image(0, 0);
        px[9] = 17;
        vm.expectRevert(abi.encodeWithSelector(DigitRecognizer.PixelOutOfRange.selector, 9, 17));
        digits.recognize(px);
    }

    function test_inference_errors_bubble_up_and_can_be_caught() public {
        DigitRecognizer wrong = new DigitRecognizer(keccak256("no such model"));
        vm.expectRevert(abi.encodeWithSelector(IInference.UnknownModel.selector, keccak256("no such model")));
        wrong.recognize(image(1, 1));
        (uint8 d, bytes4 err) = wrong.tryPredict(image(1, 1));
        assertEq(d, 0, "no digit");
        assertTrue(err == IInference.UnknownModel.selector, "selector caught");
        (, err) = digits.tryPredict(image(1, 4));
        assertTrue(err == bytes4(0), "no error on success");
    }

    function test_screening_records_once() public {
        int32[30] memory f;
        f[0] = 12 * 65536;
        (bool benign, int64 logit) = desk.screen(bytes32("case-1"), f);
        assertTrue(benign, "benign");
        assertEq(logit, int64(3) << 32, "logit");
        (address clinic, bool stored,,,) = desk.screenings(bytes32("case-1"));
        assertTrue(clinic == address(this) && stored, "recorded");
        vm.expectRevert(abi.encodeWithSelector(ScreeningDesk.AlreadyScreened.selector, bytes32("case-1")));
        desk.screen(bytes32("case-1"), f);
        f[0] = 20 * 65536;
        (benign, logit) = desk.preview(f);
        assertTrue(!benign, "malignant");
        assertEq(logit, -(int64(2) << 32), "negative logit");
    }
}

contract StoryBookTest is Base {
    MockInference mock;
    StoryBook book;

    function setUp() public {
        mock = new MockInference();
        vm.etch(address(Fixpoint.INFERENCE), address(mock).code);
        book = new StoryBook(mock.WRITER(), "Once", 8, 16);
    }

    function test_a_turn_appends_the_words_then_the_models_continuation() public {
        vm.prank(address(0xA11CE));
        bytes memory c = book.extend(" upon", 3);
        // The mock continues from the prompt's last byte ('n' = 0x6e): 0x6f, 0x70, 0x71.
        assertEq(c, hex"6f7071", "continuation");
        assertEq(book.story(), bytes.concat("Once upon", hex"6f7071"), "story");
        assertEq(book.turnCount(), 1, "one turn");
        (address author, uint64 blockNumber, uint32 wordsAt, uint32 modelAt, uint32 end) = book.turns(0);
        assertTrue(author == address(0xA11CE), "author");
        assertEq(blockNumber, block.number, "block");
        assertEq(wordsAt, 4, "words start");
        assertEq(modelAt, 9, "model text starts after the words");
        assertEq(end, 12, "end");
    }

    function test_the_model_reads_only_the_tail() public {
        book.extend("0123456789", 1);
        // The prompt is the last 8 bytes: "23456789"; the mock adds '9' + 1 = ':'.
        assertEq(book.tail(), bytes("3456789:"), "tail after the turn");
        assertEq(book.preview("", 2), bytes(";<"), "preview continues from the tail");
        assertEq(book.turnCount(), 1, "preview writes nothing");
    }

    function test_limits_are_errors() public {
        vm.expectRevert(abi.encodeWithSelector(StoryBook.TooManyNewBytes.selector, 17, 16));
        book.extend("", 17);
        bytes memory long = new bytes(65);
        vm.expectRevert(abi.encodeWithSelector(StoryBook.TooManyWords.selector, 65, 64));
        book.extend(long, 1);
        StoryBook greedy = new StoryBook(mock.WRITER(), "x", 40, 16);
        bytes memory words = new bytes(39);
        vm.expectRevert(abi.encodeWithSelector(IInference.ContextExceeded.selector, 40, 16, 48));
        greedy.extend(words, 16);
    }
}

contract FixpointLibTest is Base {
    function test_pack_and_read_int32_round_trip() public pure {
        int32[] memory xs = new int32[](4);
        xs[0] = -1;
        xs[1] = 0x01020304;
        xs[2] = type(int32).min;
        xs[3] = 7;
        bytes memory p = Fixpoint.packInt32(xs);
        assertEq(p, hex"ffffffff0403020100000080" hex"07000000", "little-endian layout");
        for (uint256 i = 0; i < 4; i++) {
            assertEq(Fixpoint.readInt32(p, 0, i), xs[i], "read back");
        }
        assertEq(Fixpoint.argmaxInt32(p, 0, 4), 1, "argmax");
    }

    function test_argmax_ties_go_low_and_int8_packs_twos_complement() public pure {
        int32[] memory xs = new int32[](3);
        xs[0] = 5;
        xs[1] = 9;
        xs[2] = 9;
        assertEq(Fixpoint.argmaxInt32(Fixpoint.packInt32(xs), 0, 3), 1, "tie to lowest");
        int8[] memory ys = new int8[](3);
        ys[0] = -128;
        ys[1] = -1;
        ys[2] = 127;
        assertEq(Fixpoint.packInt8(ys), hex"80ff7f", "int8 bytes");
    }

    function test_read_int64() public pure {
        bytes memory p = hex"aa" hex"feffffffffffffff";
        assertEq(Fixpoint.readInt64(p, 1, 0), -2, "int64 pos offset");
    }
}
