//! Logging: `tracing` events written to stdout, filtered by `RUST_LOG`, as text or JSON lines.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::Env;

pub struct TelemetryConfig {
    /// Which events to keep (`RUST_LOG`): a default level and per-target levels, such as
    /// `info,sqlx=warn,tower_http=debug`.
    pub filter: Targets,
    /// How events are written (`LOG_FORMAT`).
    pub format: LogFormat,
    /// What modules add besides the log lines (an exporter of traces), seeing the same spans
    /// and events as they do.
    layers: Vec<Box<dyn Layer<Registry> + Send + Sync>>,
}

impl TelemetryConfig {
    pub fn from_env(env: &mut Env) -> Self {
        Self {
            filter: env.optional("RUST_LOG", Targets::new().with_default(LevelFilter::INFO)),
            format: env.optional("LOG_FORMAT", LogFormat::Text),
            layers: Vec::new(),
        }
    }

    /// Adds a layer to the subscriber [`init`] installs, filtered by `RUST_LOG` as the log lines
    /// are: a span or event that is not logged is not exported either. `None` adds nothing.
    pub fn with_layer(
        mut self,
        layer: Option<impl Layer<Registry> + Send + Sync + 'static>,
    ) -> Self {
        if let Some(layer) = layer {
            self.layers.push(layer.boxed());
        }
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected `text` or `json`".to_owned()),
        }
    }
}

/// Installs the global subscriber. Call it once, first thing after reading the configuration.
pub fn init(config: TelemetryConfig) {
    let output = tracing_subscriber::fmt::layer();
    let output = match config.format {
        LogFormat::Text => output.with_ansi(std::io::stdout().is_terminal()).boxed(),
        LogFormat::Json => output.json().boxed(),
    };
    // No layer at all rather than an empty one when no module added any: a filtered layer
    // checks the filter again for every span and event.
    let layers = (!config.layers.is_empty()).then(|| {
        let filter = config.filter.clone();
        config.layers.with_filter(filter)
    });
    tracing_subscriber::registry()
        .with(layers)
        .with(output.with_filter(config.filter))
        .init();
}
