//! `fixpoint-quantize`: offline float-to-integer tooling (floats allowed). Never linked into consensus code.
