//! fixpoint-precompiles: the model registry and inference precompiles.
