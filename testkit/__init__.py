"""What tests/ and bench/ share: tiny models built with the host's own classes, files the host's
ordinary loaders accept, tiny depth networks, the paper's reference shift, and the official depth
implementations for fidelity checks. Weights are seeded random values (testkit.random_weights)."""
