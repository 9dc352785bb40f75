//! Decoding Lambda event-source payloads into one [`Batch`] shape.
//!
//! One function can serve several event source mappings: the source is
//! detected from the payload's shape. Each record is decoded on its own, so a
//! record the source mangled is quarantined instead of failing its batch.

use aws_lambda_events::event::dynamodb::EventRecord as DynamoDbRecord;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::kafka::KafkaRecord;
use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_lambda_events::event::sqs::SqsMessage;
use base64::Engine as _;
use sediment_lake::config::DynamoDbMapping;
use serde_json::{Map, Value};

/// Where a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Kinesis,
    Sqs,
    DynamoDb,
    Kafka,
    EventBridge,
    Cli,
}

impl SourceKind {
    /// Lower-case name: the `source` column and the raw file name prefix.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kinesis => "kinesis",
            Self::Sqs => "sqs",
            Self::DynamoDb => "dynamodb",
            Self::Kafka => "kafka",
            Self::EventBridge => "eventbridge",
            Self::Cli => "cli",
        }
    }

    /// Whether Lambda reads this source as an ordered stream, where a batch
    /// item failure means "retry from this record on" (report only the first).
    pub fn is_stream(&self) -> bool {
        matches!(self, Self::Kinesis | Self::DynamoDb)
    }

    /// Whether the source's event source mapping accepts `batchItemFailures`.
    pub fn reports_item_failures(&self) -> bool {
        matches!(self, Self::Kinesis | Self::DynamoDb | Self::Sqs)
    }
}

/// One record of a batch, decoded down to the bytes of an envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// The envelope's JSON bytes, or why none could be decoded.
    pub data: Result<Vec<u8>, String>,
    /// The raw record as the source delivered it, kept for quarantine when
    /// decoding failed before the envelope.
    pub original: Option<Vec<u8>>,
    /// The record's position in its source (`source_position` column).
    pub position: String,
    /// What to report in `batchItemFailures` if the record cannot be stored.
    pub failure_id: Option<String>,
    /// When the record reached the source, epoch milliseconds.
    pub arrival_ms: Option<i64>,
}

/// A decoded batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub source: SourceKind,
    /// Identifies the batch in its source; raw object names derive from it,
    /// so a retried batch lands on the same keys.
    pub position: String,
    pub records: Vec<SourceRecord>,
    /// Records deliberately not ingested (DynamoDB REMOVE), counted.
    pub ignored: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unrecognised event shape: {0} (expected Kinesis, SQS, DynamoDB Streams, MSK/Kafka or EventBridge)")]
    Unrecognised(String),
    #[error("the batch has no records")]
    Empty,
}

/// Decodes a Lambda payload, detecting its source from its shape.
pub fn decode(event: &Value, dynamodb: &DynamoDbMapping) -> Result<Batch, Error> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let first = records.first().ok_or(Error::Empty)?;
        let source = first.get("eventSource").or_else(|| first.get("EventSource")).and_then(Value::as_str).unwrap_or("");
        return match source {
            "aws:kinesis" => Ok(kinesis(records)),
            "aws:sqs" => Ok(sqs(records)),
            "aws:dynamodb" => Ok(dynamodb_stream(records, dynamodb)),
            other => Err(Error::Unrecognised(format!("Records[0].eventSource = {other:?}"))),
        };
    }
    if let Some(source) = event.get("eventSource").and_then(Value::as_str)
        && (source == "aws:kafka" || source == "SelfManagedKafka")
    {
        return kafka(event);
    }
    if event.get("detail-type").is_some() && event.get("detail").is_some() {
        return Ok(eventbridge(event));
    }
    let keys: Vec<&str> = event.as_object().map(|m| m.keys().map(String::as_str).take(8).collect()).unwrap_or_default();
    Err(Error::Unrecognised(format!("top-level keys {keys:?}")))
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn undecodable(value: &Value, position: String, failure_id: Option<String>, reason: String) -> SourceRecord {
    SourceRecord { data: Err(reason), original: Some(json_bytes(value)), position, failure_id, arrival_ms: None }
}

fn kinesis(records: &[Value]) -> Batch {
    let mut out = Vec::with_capacity(records.len());
    let mut arn = String::new();
    for (i, value) in records.iter().enumerate() {
        let seq_hint = value.pointer("/kinesis/sequenceNumber").and_then(Value::as_str).map(str::to_owned);
        // Seconds with a fraction; read directly (the typed field drops
        // precision when the fraction has fewer than three digits).
        let arrival_ms = value.pointer("/kinesis/approximateArrivalTimestamp").and_then(Value::as_f64).map(|s| (s * 1000.0).round() as i64);
        match serde_json::from_value::<KinesisEventRecord>(value.clone()) {
            Ok(r) => {
                if arn.is_empty() {
                    arn = r.event_source_arn.clone().unwrap_or_default();
                }
                let shard = r.event_id.as_deref().and_then(|id| id.split_once(':')).map(|(s, _)| s).unwrap_or("shard");
                out.push(SourceRecord {
                    data: Ok(r.kinesis.data.0),
                    original: None,
                    position: format!("{shard}:{}", r.kinesis.sequence_number),
                    failure_id: Some(r.kinesis.sequence_number.clone()),
                    arrival_ms: arrival_ms.or(Some(r.kinesis.approximate_arrival_timestamp.0.timestamp_millis())),
                });
            }
            Err(e) => out.push(undecodable(value, format!("record {i}"), seq_hint, format!("undecodable Kinesis record: {e}"))),
        }
    }
    let position = stream_position("kinesis", &arn, &out);
    Batch { source: SourceKind::Kinesis, position, records: out, ignored: 0 }
}

/// `<source>|<arn>|<first position>|<last position>`: a stream batch is one
/// contiguous range of one shard.
fn stream_position(kind: &str, arn: &str, records: &[SourceRecord]) -> String {
    let first = records.first().map(|r| r.position.as_str()).unwrap_or("");
    let last = records.last().map(|r| r.position.as_str()).unwrap_or("");
    format!("{kind}|{arn}|{first}|{last}|{}", records.len())
}

/// A hash over every record position, for sources without ranges.
fn hashed_position(kind: &str, arn: &str, records: &[SourceRecord]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for r in records {
        h.update(r.position.as_bytes());
        h.update(b"\n");
    }
    format!("{kind}|{arn}|{}", hex::encode(h.finalize()))
}

fn sqs(records: &[Value]) -> Batch {
    let mut out = Vec::with_capacity(records.len());
    let mut arn = String::new();
    for (i, value) in records.iter().enumerate() {
        let id_hint = value.get("messageId").and_then(Value::as_str).map(str::to_owned);
        let msg = match serde_json::from_value::<SqsMessage>(value.clone()) {
            Ok(m) => m,
            Err(e) => {
                out.push(undecodable(value, format!("record {i}"), id_hint, format!("undecodable SQS message: {e}")));
                continue;
            }
        };
        if arn.is_empty() {
            arn = msg.event_source_arn.clone().unwrap_or_default();
        }
        let position = msg.message_id.clone().unwrap_or_else(|| format!("record {i}"));
        let arrival_ms = msg.attributes.get("SentTimestamp").and_then(|t| t.parse().ok());
        let data = match msg.body.as_deref() {
            None => Err("SQS message has no body".to_owned()),
            Some(body) => Ok(unwrap_sqs_body(body)),
        };
        out.push(SourceRecord { data, original: None, position, failure_id: msg.message_id, arrival_ms });
    }
    let position = hashed_position("sqs", &arn, &out);
    Batch { source: SourceKind::Sqs, position, records: out, ignored: 0 }
}

/// An SQS body is the envelope itself, an SNS notification whose `Message`
/// is, or an EventBridge event whose `detail` is.
fn unwrap_sqs_body(body: &str) -> Vec<u8> {
    let trimmed = body.trim_start();
    if trimmed.starts_with('{')
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(trimmed)
    {
        if map.get("Type").and_then(Value::as_str) == Some("Notification")
            && let Some(Value::String(message)) = map.get("Message")
        {
            return unwrap_sqs_body(message);
        }
        if map.contains_key("detail-type")
            && let Some(detail) = map.get("detail")
        {
            return json_bytes(detail);
        }
    }
    body.as_bytes().to_vec()
}

fn kafka(event: &Value) -> Result<Batch, Error> {
    let arn = event.get("eventSourceArn").and_then(Value::as_str).unwrap_or("");
    let groups = event.get("records").and_then(Value::as_object).ok_or(Error::Empty)?;
    // Topic-partitions in a stable order, records in offset order within each.
    let mut names: Vec<&String> = groups.keys().collect();
    names.sort();
    let mut out = Vec::new();
    let mut ranges = Vec::new();
    for name in names {
        let list = groups[name].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let before = out.len();
        for (i, value) in list.iter().enumerate() {
            match serde_json::from_value::<KafkaRecord>(value.clone()) {
                Ok(r) => {
                    let topic = r.topic.as_deref().unwrap_or(name);
                    let position = format!("{topic}-{}@{}", r.partition, r.offset);
                    let data = match r.value.as_deref() {
                        None => Err("Kafka record has no value".to_owned()),
                        Some(v) => {
                            base64::engine::general_purpose::STANDARD.decode(v).map_err(|e| format!("Kafka value is not base64: {e}"))
                        }
                    };
                    out.push(SourceRecord {
                        data,
                        original: r.value.map(String::into_bytes),
                        position: position.clone(),
                        failure_id: Some(position),
                        arrival_ms: Some(r.timestamp.0.timestamp_millis()),
                    });
                }
                Err(e) => out.push(undecodable(value, format!("{name}[{i}]"), None, format!("undecodable Kafka record: {e}"))),
            }
        }
        if out.len() > before {
            ranges.push(format!("{name}:{}..{}", out[before].position, out[out.len() - 1].position));
        }
    }
    if out.is_empty() {
        return Err(Error::Empty);
    }
    let position = format!("kafka|{arn}|{}", ranges.join(","));
    Ok(Batch { source: SourceKind::Kafka, position, records: out, ignored: 0 })
}

fn eventbridge(event: &Value) -> Batch {
    let id = event.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
    let record = match serde_json::from_value::<EventBridgeEvent<Value>>(event.clone()) {
        Ok(e) => SourceRecord {
            data: Ok(json_bytes(&e.detail)),
            original: None,
            position: id.clone(),
            failure_id: Some(id.clone()),
            arrival_ms: e.time.map(|t| t.timestamp_millis()),
        },
        Err(e) => undecodable(event, id.clone(), Some(id.clone()), format!("undecodable EventBridge event: {e}")),
    };
    Batch { source: SourceKind::EventBridge, position: format!("eventbridge|{id}"), records: vec![record], ignored: 0 }
}

fn dynamodb_stream(records: &[Value], mapping: &DynamoDbMapping) -> Batch {
    let mut out = Vec::with_capacity(records.len());
    let mut ignored = 0;
    let mut arn = String::new();
    for (i, value) in records.iter().enumerate() {
        let seq_hint = value.pointer("/dynamodb/SequenceNumber").and_then(Value::as_str).map(str::to_owned);
        let rec = match serde_json::from_value::<DynamoDbRecord>(value.clone()) {
            Ok(r) => r,
            Err(e) => {
                out.push(undecodable(value, format!("record {i}"), seq_hint, format!("undecodable DynamoDB stream record: {e}")));
                continue;
            }
        };
        if arn.is_empty() {
            arn = rec.event_source_arn.clone().unwrap_or_default();
        }
        if rec.event_name == "REMOVE" {
            ignored += 1;
            continue;
        }
        let seq = rec.change.sequence_number.clone();
        let position = seq.clone().unwrap_or_else(|| rec.event_id.clone());
        let data = serde_dynamo::from_item::<_, Value>(rec.change.new_image.clone())
            .map_err(|e| format!("NewImage is not convertible to JSON: {e}"))
            .and_then(|image| image_to_envelope(image, mapping));
        out.push(SourceRecord {
            data,
            original: Some(json_bytes(value)),
            position,
            failure_id: seq,
            arrival_ms: Some(rec.change.approximate_creation_date_time.timestamp_millis()),
        });
    }
    let position = stream_position("dynamodb", &arn, &out);
    Batch { source: SourceKind::DynamoDb, position, records: out, ignored }
}

/// Maps an event-store item onto envelope JSON. `payload`/`metadata` may be
/// maps or JSON strings; unmapped attributes keep their own names, so
/// snake_case and camelCase items work without configuration.
fn image_to_envelope(image: Value, m: &DynamoDbMapping) -> Result<Vec<u8>, String> {
    let Value::Object(mut item) = image else {
        return Err("NewImage is not a map".to_owned());
    };
    if item.is_empty() {
        return Err("record has no NewImage (stream view type must include new images)".to_owned());
    }
    let mut env = Map::new();
    let fields: [(&str, &Option<String>); 9] = [
        ("event_id", &m.event_id),
        ("event_type", &m.event_type),
        ("event_version", &m.event_version),
        ("aggregate_type", &m.aggregate_type),
        ("aggregate_id", &m.aggregate_id),
        ("sequence", &m.sequence),
        ("occurred_at", &m.occurred_at),
        ("payload", &m.payload),
        ("metadata", &m.metadata),
    ];
    for (field, attr) in fields {
        let value = match attr {
            Some(name) => item.remove(name),
            None => item.remove(field).or_else(|| item.remove(&camel(field))),
        };
        let Some(mut value) = value else { continue };
        if matches!(field, "payload" | "metadata")
            && let Value::String(text) = &value
        {
            value = serde_json::from_str(text).map_err(|e| format!("`{field}` attribute is not JSON: {e}"))?;
        }
        // DynamoDB numbers arrive as floats when they have a fraction; an
        // integral float is the integer the writer stored.
        if matches!(field, "event_version" | "sequence" | "occurred_at")
            && let Some(f) = value.as_f64()
            && value.as_i64().is_none()
            && f.fract() == 0.0
        {
            value = Value::from(f as i64);
        }
        env.insert(field.to_owned(), value);
    }
    serde_json::to_vec(&Value::Object(env)).map_err(|e| e.to_string())
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use serde_json::json;

    const EVENT: &str =
        r#"{"event_id":"e1","event_type":"T","aggregate_type":"A","aggregate_id":"a1","occurred_at":"2026-11-02T10:00:00Z","payload":{}}"#;

    fn kinesis_record(seq: &str, data: &str) -> Value {
        json!({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "a1", "sequenceNumber": seq,
                        "data": data, "approximateArrivalTimestamp": 1793613600.5},
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": format!("shardId-000000000001:{seq}"), "eventName": "aws:kinesis:record",
            "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/events"
        })
    }

    #[test]
    fn kinesis_decodes_base64_and_positions() {
        let event = json!({"Records": [kinesis_record("100", &B64.encode(EVENT)), kinesis_record("101", "!!notbase64")]});
        let b = decode(&event, &Default::default()).unwrap();
        assert_eq!(b.source, SourceKind::Kinesis);
        assert_eq!(b.records[0].data.as_deref().unwrap(), EVENT.as_bytes());
        assert_eq!(b.records[0].position, "shardId-000000000001:100");
        assert_eq!(b.records[0].failure_id.as_deref(), Some("100"));
        assert_eq!(b.records[0].arrival_ms, Some(1_793_613_600_500));
        // a record the source mangled is kept for quarantine, with its id
        assert!(b.records[1].data.as_ref().unwrap_err().contains("undecodable Kinesis record"));
        assert_eq!(b.records[1].failure_id.as_deref(), Some("101"));
        assert!(b.records[1].original.is_some());
        assert_eq!(b.position, "kinesis|arn:aws:kinesis:us-east-1:1:stream/events|shardId-000000000001:100|record 1|2");
    }

    #[test]
    fn sqs_unwraps_sns_and_eventbridge_bodies() {
        let sns = json!({"Type": "Notification", "MessageId": "m", "Message": EVENT}).to_string();
        let eb =
            json!({"detail-type": "OrderPlaced", "source": "shop", "detail": serde_json::from_str::<Value>(EVENT).unwrap()}).to_string();
        let msg = |id: &str, body: &str| {
            json!({"messageId": id, "receiptHandle": "r", "body": body,
            "attributes": {"SentTimestamp": "1793613600000"}, "messageAttributes": {},
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"})
        };
        let event = json!({"Records": [msg("m1", EVENT), msg("m2", &sns), msg("m3", &eb)]});
        let b = decode(&event, &Default::default()).unwrap();
        assert_eq!(b.source, SourceKind::Sqs);
        assert_eq!(b.records[0].data.as_deref().unwrap(), EVENT.as_bytes());
        assert_eq!(b.records[1].data.as_deref().unwrap(), EVENT.as_bytes());
        let detail: Value = serde_json::from_slice(b.records[2].data.as_ref().unwrap()).unwrap();
        assert_eq!(detail["event_id"], "e1");
        assert_eq!(b.records[2].failure_id.as_deref(), Some("m3"));
        assert_eq!(b.records[0].arrival_ms, Some(1_793_613_600_000));
        // the same messages give the same batch position
        assert_eq!(decode(&event, &Default::default()).unwrap().position, b.position);
    }

    fn ddb(name: &str, seq: &str, image: Value) -> Value {
        json!({"awsRegion": "us-east-1", "eventID": format!("id-{seq}"), "eventName": name, "eventSource": "aws:dynamodb",
               "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/events/stream/x",
               "dynamodb": {"ApproximateCreationDateTime": 1793613600.0, "Keys": {}, "NewImage": image,
                            "SequenceNumber": seq, "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"}})
    }

    #[test]
    fn dynamodb_images_map_to_envelopes() {
        let snake = json!({"event_id": {"S": "e1"}, "event_type": {"S": "T"}, "aggregate_type": {"S": "A"},
            "aggregate_id": {"S": "a1"}, "sequence": {"N": "4"}, "occurred_at": {"S": "2026-11-02T10:00:00Z"},
            "payload": {"M": {"total": {"N": "12.5"}}}});
        let camel = json!({"eventId": {"S": "e2"}, "eventType": {"S": "T"}, "aggregateType": {"S": "A"},
            "aggregateId": {"S": "a1"}, "occurredAt": {"N": "1793613600000"},
            "payload": {"S": "{\"x\":[1,2]}"}, "metadata": {"S": "{\"c\":\"d\"}"}});
        let event = json!({"Records": [ddb("INSERT", "1", snake), ddb("MODIFY", "2", camel), ddb("REMOVE", "3", json!({}))]});
        let b = decode(&event, &Default::default()).unwrap();
        assert_eq!(b.source, SourceKind::DynamoDb);
        assert_eq!(b.ignored, 1);
        assert_eq!(b.records.len(), 2);
        let e1 = sediment_lake::Envelope::parse(b.records[0].data.as_ref().unwrap()).unwrap();
        assert_eq!((e1.event_id.as_str(), e1.sequence), ("e1", Some(4)));
        assert_eq!(e1.payload, r#"{"total":12.5}"#);
        let e2 = sediment_lake::Envelope::parse(b.records[1].data.as_ref().unwrap()).unwrap();
        assert_eq!(e2.occurred_at_ms, 1_793_613_600_000);
        assert_eq!(e2.payload, r#"{"x":[1,2]}"#);
        assert_eq!(e2.metadata.as_deref(), Some(r#"{"c":"d"}"#));
        assert_eq!(b.records[1].failure_id.as_deref(), Some("2"));
    }

    #[test]
    fn dynamodb_mapping_renames_attributes() {
        let image = json!({"pk": {"S": "Order#o1"}, "id": {"S": "e9"}, "kind": {"S": "T"}, "aggregate_type": {"S": "Order"},
            "aggregate_id": {"S": "o1"}, "at": {"S": "2026-11-02T10:00:00Z"}, "data": {"M": {}}});
        let mapping = DynamoDbMapping {
            event_id: Some("id".into()),
            event_type: Some("kind".into()),
            occurred_at: Some("at".into()),
            payload: Some("data".into()),
            ..Default::default()
        };
        let b = decode(&json!({"Records": [ddb("INSERT", "7", image)]}), &mapping).unwrap();
        let e = sediment_lake::Envelope::parse(b.records[0].data.as_ref().unwrap()).unwrap();
        assert_eq!((e.event_id.as_str(), e.event_type.as_str(), e.aggregate_id.as_str()), ("e9", "T", "o1"));
    }

    #[test]
    fn kafka_and_eventbridge() {
        let rec = |off: i64, v: &str| {
            json!({"topic": "events", "partition": 2, "offset": off, "timestamp": 1793613600000i64,
            "timestampType": "CREATE_TIME", "value": v, "headers": []})
        };
        let event = json!({"eventSource": "aws:kafka", "eventSourceArn": "arn:msk", "records": {"events-2": [rec(5, &B64.encode(EVENT)), rec(6, "%%%")]}});
        let b = decode(&event, &Default::default()).unwrap();
        assert_eq!(b.source, SourceKind::Kafka);
        assert_eq!(b.records[0].position, "events-2@5");
        assert!(b.records[1].data.is_err());
        assert_eq!(b.position, "kafka|arn:msk|events-2:events-2@5..events-2@6");

        let eb = json!({"version": "0", "id": "ev-1", "detail-type": "OrderPlaced", "source": "shop", "account": "1",
            "time": "2026-11-02T10:00:00Z", "region": "us-east-1", "resources": [], "detail": serde_json::from_str::<Value>(EVENT).unwrap()});
        let b = decode(&eb, &Default::default()).unwrap();
        assert_eq!(b.source, SourceKind::EventBridge);
        assert_eq!(b.records[0].failure_id.as_deref(), Some("ev-1"));
        assert!(sediment_lake::Envelope::parse(b.records[0].data.as_ref().unwrap()).is_ok());
    }

    #[test]
    fn unknown_shapes_are_errors() {
        assert!(matches!(decode(&json!({"hello": 1}), &Default::default()), Err(Error::Unrecognised(_))));
        assert!(matches!(decode(&json!({"Records": []}), &Default::default()), Err(Error::Empty)));
        assert!(matches!(decode(&json!({"Records": [{"eventSource": "aws:s3"}]}), &Default::default()), Err(Error::Unrecognised(_))));
    }
}
