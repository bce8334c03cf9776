//! Structured logs: one JSON object a line on stderr, with time, level and message.
//! Secrets never go through here.

use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

fn emit(level: &str, msg: &str, mut fields: Value) {
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let mut line = json!({ "ts": (ts * 1000.0).round() / 1000.0, "level": level, "msg": msg });
    if let (Some(line), Some(fields)) = (line.as_object_mut(), fields.as_object_mut()) {
        line.append(fields);
    }
    eprintln!("{line}");
}

pub fn info(msg: &str, fields: Value) {
    emit("info", msg, fields);
}

pub fn warn(msg: &str, fields: Value) {
    emit("warn", msg, fields);
}

pub fn error(msg: &str, fields: Value) {
    emit("error", msg, fields);
}
