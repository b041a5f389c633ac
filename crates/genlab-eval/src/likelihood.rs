//! Likelihood numbers in the units papers report, shared by the families: bits per dimension for
//! images, bits per character and perplexity for text.

use std::f64::consts::LN_2;

/// Bits per dimension of a discrete model's NLL (nats per example over `dims` dimensions), as for
/// binarised MNIST.
pub fn bits_per_dim(nll_nats: f64, dims: usize) -> f64 {
    nll_nats / (dims as f64 * LN_2)
}

/// Bits per dimension of 8-bit data from a continuous density fitted to pixels scaled to [0, 1] and
/// uniformly dequantised: the density on [0, 256)^D is the unit-scale one divided by 256^D, so
/// `D ln 256` nats are added (as RealNVP/Glow report it).
pub fn bits_per_dim_8bit_dequantised(nll_nats_unit_scale: f64, dims: usize) -> f64 {
    (nll_nats_unit_scale + dims as f64 * 256f64.ln()) / (dims as f64 * LN_2)
}

/// Bits per character from the mean NLL per character in nats.
pub fn bits_per_char(nll_nats_per_char: f64) -> f64 {
    nll_nats_per_char / LN_2
}

/// Perplexity from the mean NLL per token in nats.
pub fn perplexity(nll_nats_per_token: f64) -> f64 {
    nll_nats_per_token.exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // A uniform model over 256 values per pixel costs 8 bits per dimension.
        assert!((bits_per_dim(784.0 * 256f64.ln(), 784) - 8.0).abs() < 1e-12);
        // A uniform density on [0, 1] (NLL 0) of dequantised 8-bit data is also 8 bits per dimension.
        assert!((bits_per_dim_8bit_dequantised(0.0, 3072) - 8.0).abs() < 1e-12);
        // A uniform model over 65 characters: perplexity 65, log2(65) bits per character.
        let nll = 65f64.ln();
        assert!((perplexity(nll) - 65.0).abs() < 1e-9);
        assert!((bits_per_char(nll) - 65f64.log2()).abs() < 1e-12);
    }
}
