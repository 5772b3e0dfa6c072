//! Units per purchase: one value or a mix the attempts cycle through.

use serde::Serialize;

/// Most distinct values a quantity mix may have.
pub const MAX_QUANTITY_MIX: usize = 64;

/// Units per purchase: a single value or a mix (`1,2,3`) that attempts cycle through, so every
/// size is exercised and a check of `stock > 0` instead of `stock >= quantity` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Quantities(Vec<u32>);

impl Quantities {
    /// A mix of 1 to [`MAX_QUANTITY_MIX`] values, each from 1 to `max`.
    pub fn new(values: Vec<u32>, max: u32) -> Result<Self, String> {
        if values.is_empty() || values.len() > MAX_QUANTITY_MIX {
            return Err(format!(
                "give 1 to {MAX_QUANTITY_MIX} quantities, got {}",
                values.len()
            ));
        }
        if let Some(bad) = values.iter().find(|&&q| q == 0 || q > max) {
            return Err(format!("quantity {bad} is outside 1..={max}"));
        }
        Ok(Self(values))
    }

    /// One value.
    pub fn single(quantity: u32) -> Self {
        Self(vec![quantity.max(1)])
    }

    /// Parses `2` or `1,2,3`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let values = raw
            .split(',')
            .map(|part| {
                part.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("`{part}` is not a whole number"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(values, MAX_QUANTITY)
    }

    /// The quantity of attempt `seq` of user `user`.
    pub fn pick(&self, user: u32, seq: u32) -> u32 {
        let i = (u64::from(user) + u64::from(seq)) % self.0.len() as u64;
        self.0[i as usize]
    }

    pub fn values(&self) -> &[u32] {
        &self.0
    }

    /// The largest value.
    pub fn max(&self) -> u32 {
        self.0.iter().copied().max().unwrap_or(1)
    }
}

impl std::fmt::Display for Quantities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Largest quantity the driver asks for in one purchase.
pub const MAX_QUANTITY: u32 = 1_000_000;
