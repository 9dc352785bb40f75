//! Coverage manifests: what one compaction of one day holds.
//!
//! A compaction writes its manifest *before* the Delta commit that makes its
//! files current; the curated file names carry the run id (see
//! [`crate::paths::curated_file`]), so a reader holding a Delta snapshot finds
//! exactly the manifest of that snapshot's files. Raw files listed in
//! `raw_files` are in the curated day; every other raw file of the day is not.
//! Manifests are immutable and versioned so old ones stay readable.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum Manifest {
    #[serde(rename = "1")]
    V1(ManifestV1),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestV1 {
    pub table: String,
    pub dt: NaiveDate,
    pub run_id: String,
    /// The run whose files this one replaced, if the day was compacted before.
    pub previous_run_id: Option<String>,
    /// Every raw file key (relative to the lake root) whose events the day holds,
    /// cumulative over earlier runs of the same day.
    pub raw_files: Vec<String>,
    /// Rows read by this run (previous curated rows plus new raw rows).
    pub rows_in: u64,
    /// Rows dropped as duplicates of an `event_id` already seen.
    pub duplicates: u64,
    /// Rows in the curated day.
    pub rows_out: u64,
    /// Order-independent checksum of the day's `event_id`s (see `verify`).
    pub checksum: String,
    /// Data files written, relative to the table root.
    pub files: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// The day's rows by event type and aggregate type (exact), so counts
    /// over curated days are answered without opening their files. Absent
    /// from manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Vec<GroupCount>>,
    /// The day's payload shape per (event type, event version), merged over
    /// its rows: what the payload schema registry is built from. Absent from
    /// manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shapes: Option<Vec<crate::payload_schema::PayloadShape>>,
    /// The day's typed copies, one per event type whose payloads are
    /// objects: written before this manifest, current with it. Absent from
    /// manifests written before they existed, and for a type whose copy
    /// could not be written (its readers parse the payload instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed: Option<Vec<TypedFiles>>,
}

/// The typed copy of one event type's rows in a curated day: every column
/// of the curated files but the payload, then a column per top-level
/// scalar payload field the day's payloads have a value for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedFiles {
    pub event_type: String,
    pub columns: Vec<TypedFileColumn>,
    /// Fields with values that day that have no column (objects, arrays,
    /// mixed kinds): read from the payload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parsed: Vec<String>,
    pub files: Vec<TypedFile>,
}

/// A payload field's column in a typed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedFileColumn {
    /// The member name in the payload.
    pub field: String,
    /// The column's name in the file (`payload.<field>`).
    pub column: String,
    /// What the column holds: the day's shape of the field, integers as
    /// `bigint`, as the typed tables type it.
    pub shape: crate::payload_schema::Shape,
}

/// One typed Parquet file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedFile {
    /// Relative to the lake root.
    pub key: String,
    pub size: u64,
    pub rows: u64,
}

/// Rows of one (event type, aggregate type) in a curated day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCount {
    pub event_type: String,
    pub aggregate_type: String,
    pub rows: u64,
}

/// What a derived table's day (a projection snapshot or a view day) was
/// computed from. The day is stale when its current inputs differ from
/// `inputs`; written before the commit that makes its files current, found
/// through the run id in the file names like [`Manifest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum DerivedManifest {
    #[serde(rename = "1")]
    V1(DerivedManifestV1),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivedManifestV1 {
    pub table: String,
    pub dt: NaiveDate,
    pub run_id: String,
    /// Identities of the inputs: definition hash, source runs.
    pub inputs: Vec<String>,
    pub rows: u64,
    /// Values that did not cast to their column type, by column.
    pub cast_errors: std::collections::BTreeMap<String, u64>,
    pub files: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// Restatement files (lake-relative keys) of this day: what each rebuild
    /// that replaced a published run changed, cumulative over the day's
    /// runs, so the current manifest alone names them all (`vacuum` may
    /// delete the manifests of replaced runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restatements: Vec<RestatementFile>,
}

/// A restatement file: what one rebuild of a published derived day changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestatementFile {
    /// Relative to the lake root (`_restatements/<table>/dt=…/<run>.parquet`).
    pub key: String,
    pub size: u64,
    pub rows: u64,
}

impl DerivedManifest {
    pub fn v1(&self) -> &DerivedManifestV1 {
        match self {
            DerivedManifest::V1(m) => m,
        }
    }
}

impl Manifest {
    pub fn v1(&self) -> &ManifestV1 {
        match self {
            Manifest::V1(m) => m,
        }
    }
}

/// Order-independent checksum of a set of event ids: the wrapping sum of the
/// first 16 bytes of each id's SHA-256, as hex. Shared by the compactor and
/// `verify` so both sides count the same way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IdChecksum(u128);

impl IdChecksum {
    pub fn add(&mut self, event_id: &str) {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(event_id.as_bytes());
        let mut head = [0u8; 16];
        head.copy_from_slice(&digest[..16]);
        self.0 = self.0.wrapping_add(u128::from_be_bytes(head));
    }

    pub fn merge(&mut self, other: IdChecksum) {
        self.0 = self.0.wrapping_add(other.0);
    }

    pub fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_order() {
        let (mut a, mut b) = (IdChecksum::default(), IdChecksum::default());
        for id in ["x", "y", "z"] {
            a.add(id);
        }
        for id in ["z", "x", "y"] {
            b.add(id);
        }
        assert_eq!(a, b);
        b.add("w");
        assert_ne!(a, b);
    }

    #[test]
    fn versioned_json() {
        let m = Manifest::V1(ManifestV1 {
            table: "events".into(),
            dt: "2026-11-02".parse().unwrap(),
            run_id: "r".into(),
            previous_run_id: None,
            raw_files: vec!["raw/events/dt=2026-11-02/hour=01/a.parquet".into()],
            rows_in: 2,
            duplicates: 1,
            rows_out: 1,
            checksum: IdChecksum::default().hex(),
            files: vec![],
            created_at: DateTime::from_timestamp(0, 0).unwrap(),
            counts: None,
            shapes: None,
            typed: None,
        });
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.starts_with(r#"{"version":"1","table":"events""#), "{text}");
        assert!(!text.contains("counts"), "{text}");
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), m);
        let Manifest::V1(mut with) = m;
        with.counts = Some(vec![GroupCount { event_type: "OrderPlaced".into(), aggregate_type: "Order".into(), rows: 1 }]);
        let text = serde_json::to_string(&Manifest::V1(with.clone())).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), Manifest::V1(with));
    }
}
