//! The default event sink: the `tracing` log.

use async_trait::async_trait;

use crate::event::{EventSink, EventSinkError, KeyEvent};

/// Logs each event at `INFO` (target `tower_apikey::event`; `ended_key_used` at
/// `WARN`), with its id, type, key id and actor: never a key or a digest, which an
/// event does not hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingEventSink;

#[async_trait]
impl EventSink for TracingEventSink {
    async fn deliver(&self, event: &KeyEvent) -> Result<(), EventSinkError> {
        let actor = event.actor().map(|a| a.as_str()).unwrap_or("application");
        let kind = event.kind().as_str();
        let related = event.detail().related_key_id.map(|id| id.to_string());
        let related = related.as_deref().unwrap_or("");
        if event.kind() == crate::event::EventType::EndedKeyUsed {
            tracing::warn!(
                target: "tower_apikey::event",
                event_id = %event.id(),
                kind,
                key_id = %event.key_id(),
                attempts = event.detail().attempts.unwrap_or(0),
                "API key event"
            );
        } else {
            tracing::info!(
                target: "tower_apikey::event",
                event_id = %event.id(),
                kind,
                key_id = %event.key_id(),
                actor,
                related_key_id = related,
                days = event.detail().days.unwrap_or(0),
                "API key event"
            );
        }
        Ok(())
    }
}
