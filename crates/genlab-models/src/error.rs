//! Errors raised while building a model from its config.

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A config value that cannot build a model: names the field and what was expected.
    #[error("model.{field} = {value}: {expected}")]
    Config { field: &'static str, value: String, expected: String },
}
