//! A deterministic, realistic e-commerce event stream for tests, the demo
//! and the benchmarks.
//!
//! Customers register and change tier; products are created, repriced and
//! restocked; orders are placed, filled with items, paid, shipped,
//! delivered, sometimes cancelled and sometimes deleted. Each aggregate's
//! `sequence` grows with its `occurred_at`. The stream is emitted roughly in
//! time order with a little disorder (some events arrive late), optional
//! exact duplicates and optional malformed lines. The same options give the
//! same bytes.

use std::io::{self, Write};

use chrono::{NaiveDate, SecondsFormat};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub events: usize,
    pub days: u32,
    pub start: NaiveDate,
    pub seed: u64,
    /// Fraction of lines repeated later in the stream (at-least-once delivery).
    pub duplicates: f64,
    /// Fraction of extra lines that are not valid events.
    pub malformed: f64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            events: 10_000,
            days: 7,
            start: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default(),
            seed: 42,
            duplicates: 0.0,
            malformed: 0.0,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GenerateSummary {
    /// Distinct valid events.
    pub events: usize,
    pub duplicates: usize,
    pub malformed: usize,
    pub lines: usize,
}

struct Ev {
    at_ms: i64,
    /// When the event reaches the stream (≥ at_ms; larger for late arrivals).
    emit_ms: i64,
    json: String,
}

struct Gen {
    rng: ChaCha8Rng,
    out: Vec<Ev>,
    start_ms: i64,
    end_ms: i64,
    camel_every: u64,
    counter: u64,
}

const CARRIERS: &[&str] = &["UPS", "DHL", "FedEx", "USPS", "PostNL"];
const CHANNELS: &[&str] = &["web", "ios", "android", "store"];
const METHODS: &[&str] = &["card", "paypal", "apple_pay", "invoice"];
const COUNTRIES: &[&str] = &["US", "DE", "GB", "FR", "NL", "JP", "BR", "IN"];
const CATEGORIES: &[&str] = &["books", "garden", "toys", "kitchen", "sports", "electronics", "fashion"];
const TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];
const REASONS: &[&str] = &["customer_request", "payment_failed", "out_of_stock", "fraud_suspected"];

impl Gen {
    fn id(&mut self) -> String {
        let hi: u64 = self.rng.r#gen();
        let lo: u64 = self.rng.r#gen();
        let v = ((hi as u128) << 64) | lo as u128;
        let h = format!("{v:032x}");
        format!("{}-{}-4{}-{}-{}", &h[..8], &h[8..12], &h[13..16], &h[16..20], &h[20..32])
    }

    #[allow(clippy::too_many_arguments)]
    fn push(&mut self, agg_type: &str, agg_id: &str, seq: i64, etype: &str, at_ms: i64, payload: Value, correlation: &str) {
        if at_ms >= self.end_ms {
            return;
        }
        self.counter += 1;
        let event_id = self.id();
        let late = self.rng.gen_bool(0.02);
        let emit_ms = at_ms + if late { self.rng.gen_range(60_000..6 * 3_600_000) } else { self.rng.gen_range(0..2_000) };
        let ts = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
        let metadata = json!({"correlation_id": correlation, "causation_id": event_id, "producer": "shop-api"});
        // Producers differ: most send snake_case RFC 3339, some camelCase epoch millis.
        let obj = if self.counter.is_multiple_of(self.camel_every) {
            json!({"eventId": event_id, "eventType": etype, "eventVersion": 1, "aggregateType": agg_type,
                   "aggregateId": agg_id, "sequence": seq, "occurredAt": at_ms, "payload": payload, "metadata": metadata})
        } else {
            json!({"event_id": event_id, "event_type": etype, "event_version": 1, "aggregate_type": agg_type,
                   "aggregate_id": agg_id, "sequence": seq, "occurred_at": ts.to_rfc3339_opts(SecondsFormat::Millis, true),
                   "payload": payload, "metadata": metadata})
        };
        self.out.push(Ev { at_ms, emit_ms, json: obj.to_string() });
    }

    fn time_in_day(&mut self, day_start: i64) -> i64 {
        // Busier in the afternoon and evening (UTC).
        let hour = loop {
            let h = self.rng.gen_range(0..24);
            let weight = if (9..23).contains(&h) { 1.0 } else { 0.35 };
            if self.rng.gen_bool(weight) {
                break h;
            }
        };
        day_start + hour * 3_600_000 + self.rng.gen_range(0..3_600_000)
    }
}

fn money(cents: i64) -> Value {
    json!((cents as f64) / 100.0)
}

/// Writes `opts.events` distinct events (plus duplicates and malformed lines)
/// as NDJSON.
pub fn generate(opts: &GenerateOptions, out: &mut dyn Write) -> io::Result<GenerateSummary> {
    let start_ms = opts.start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis();
    let days = opts.days.max(1) as i64;
    let end_ms = start_ms + days * 86_400_000;
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
        out: Vec::with_capacity(opts.events + opts.events / 8),
        start_ms,
        end_ms,
        camel_every: 10,
        counter: 0,
    };

    // Catalogue first: products exist before anything sells.
    let n_products = (opts.events / 250).clamp(5, 5_000);
    let mut products: Vec<(String, i64, i64, i64)> = Vec::with_capacity(n_products); // id, price cents, seq, last time
    for i in 0..n_products {
        let id = format!("P-{i:05}");
        let price = g.rng.gen_range(299..25_000);
        let at = g.start_ms + g.rng.gen_range(0..3_600_000);
        let cat = CATEGORIES[g.rng.gen_range(0..CATEGORIES.len())];
        let stock = g.rng.gen_range(10..500);
        g.push(
            "Product",
            &id,
            1,
            "ProductCreated",
            at,
            json!({"sku": format!("SKU-{i:05}"), "name": format!("Product {i}"),
            "category": cat, "price": money(price), "stock": stock}),
            &id.clone(),
        );
        products.push((id, price, 1, at));
    }
    let mut customers: Vec<(String, i64, i64, i64)> = Vec::new(); // id, seq, registered at, last time
    let mut next_customer = 0usize;
    let mut next_order = 0usize;

    while g.out.len() < opts.events {
        let day = g.rng.gen_range(0..days);
        let day_start = start_ms + day * 86_400_000;
        let roll: f64 = g.rng.r#gen();
        if roll < 0.06 && !products.is_empty() {
            // Repricing or restocking.
            let k = g.rng.gen_range(0..products.len());
            let at = g.time_in_day(day_start);
            // Keep each product's sequence in time order: only move forward.
            let (id, price, seq, last) = products[k].clone();
            let new_seq = seq + 1;
            let at = at.max(last + g.rng.gen_range(60_000..3_600_000));
            if g.rng.gen_bool(0.5) {
                let new_price = (price as f64 * g.rng.gen_range(0.8..1.25)) as i64;
                g.push("Product", &id, new_seq, "PriceChanged", at, json!({"old_price": money(price), "price": money(new_price)}), &id);
                products[k].1 = new_price;
            } else {
                let delta = g.rng.gen_range(-20..100);
                g.push("Product", &id, new_seq, "StockAdjusted", at, json!({"delta": delta, "reason": "cycle_count"}), &id);
            }
            products[k].2 = new_seq;
            products[k].3 = at;
            continue;
        }
        if roll < 0.08 && !customers.is_empty() {
            let k = g.rng.gen_range(0..customers.len());
            let (id, seq, _, last) = customers[k].clone();
            let at = g.time_in_day(day_start).max(last + g.rng.gen_range(60_000..3_600_000));
            let tier = TIERS[g.rng.gen_range(0..TIERS.len())];
            g.push("Customer", &id, seq + 1, "CustomerTierChanged", at, json!({"tier": tier}), &id);
            customers[k].1 = seq + 1;
            customers[k].3 = at;
            continue;
        }
        // An order, with a customer (new 30% of the time).
        let placed = g.time_in_day(day_start);
        // A returning customer must have registered before this order.
        let returning = (0..3)
            .filter_map(|_| {
                if customers.is_empty() || g.rng.gen_bool(0.3) {
                    return None;
                }
                let k = g.rng.gen_range(0..customers.len());
                (customers[k].2 < placed).then(|| customers[k].0.clone())
            })
            .next();
        let customer = match returning {
            Some(id) => id,
            None => {
                let id = format!("C-{next_customer:06}");
                next_customer += 1;
                let country = COUNTRIES[g.rng.gen_range(0..COUNTRIES.len())];
                let at = (placed - g.rng.gen_range(60_000..600_000)).max(start_ms);
                g.push(
                    "Customer",
                    &id,
                    1,
                    "CustomerRegistered",
                    at,
                    json!({"email": format!("{}@example.com", id.to_lowercase()), "country": country, "tier": "bronze"}),
                    &id,
                );
                customers.push((id.clone(), 1, at, at));
                id
            }
        };
        let order = format!("O-{next_order:07}");
        next_order += 1;
        let corr = order.clone();
        let channel = CHANNELS[g.rng.gen_range(0..CHANNELS.len())];
        let mut seq = 1;
        let mut t = placed;
        g.push(
            "Order",
            &order,
            seq,
            "OrderPlaced",
            t,
            json!({"customer_id": customer, "channel": channel, "currency": "USD", "status": "placed", "total": 0.0}),
            &corr,
        );
        let items = g.rng.gen_range(1..5);
        let mut total = 0i64;
        for _ in 0..items {
            seq += 1;
            t += g.rng.gen_range(1_000..90_000);
            let (pid, price, _, _) = products[g.rng.gen_range(0..products.len())].clone();
            let qty = g.rng.gen_range(1..4);
            total += price * qty;
            g.push(
                "Order",
                &order,
                seq,
                "ItemAdded",
                t,
                json!({"product_id": pid, "quantity": qty, "unit_price": money(price), "total": money(total), "status": "placed"}),
                &corr,
            );
        }
        let fate: f64 = g.rng.r#gen();
        if fate < 0.08 {
            seq += 1;
            t += g.rng.gen_range(60_000..7_200_000);
            let reason = REASONS[g.rng.gen_range(0..REASONS.len())];
            g.push(
                "Order",
                &order,
                seq,
                "OrderCancelled",
                t,
                json!({"reason": reason, "status": "cancelled", "total": money(total)}),
                &corr,
            );
            if g.rng.gen_bool(0.3) {
                seq += 1;
                t += g.rng.gen_range(3_600_000..86_400_000);
                g.push("Order", &order, seq, "OrderDeleted", t, json!({"reason": "gdpr"}), &corr);
            }
            continue;
        }
        seq += 1;
        t += g.rng.gen_range(5_000..600_000);
        let method = METHODS[g.rng.gen_range(0..METHODS.len())];
        g.push(
            "Order",
            &order,
            seq,
            "PaymentReceived",
            t,
            json!({"amount": money(total), "method": method, "status": "paid", "total": money(total)}),
            &corr,
        );
        if fate < 0.15 {
            continue; // paid, not yet shipped
        }
        seq += 1;
        t += g.rng.gen_range(3_600_000..2 * 86_400_000);
        let carrier = CARRIERS[g.rng.gen_range(0..CARRIERS.len())];
        let tracking = g.rng.gen_range(100_000_000u64..999_999_999);
        g.push(
            "Order",
            &order,
            seq,
            "OrderShipped",
            t,
            json!({"carrier": carrier, "tracking": format!("TRK{tracking}"), "status": "shipped", "total": money(total)}),
            &corr,
        );
        if fate < 0.25 {
            continue;
        }
        seq += 1;
        t += g.rng.gen_range(12 * 3_600_000..4 * 86_400_000);
        g.push("Order", &order, seq, "OrderDelivered", t, json!({"status": "delivered", "total": money(total)}), &corr);
    }
    g.out.truncate(opts.events);
    // Stream order: by arrival, so late events come after their neighbours.
    g.out.sort_by_key(|e| (e.emit_ms, e.at_ms));

    let mut summary = GenerateSummary { events: g.out.len(), ..Default::default() };
    let mut pending_dups: Vec<(usize, usize)> = Vec::new(); // (emit after line, index)
    let mut w = io::BufWriter::with_capacity(1 << 20, out);
    let n = g.out.len();
    for i in 0..n {
        w.write_all(g.out[i].json.as_bytes())?;
        w.write_all(b"\n")?;
        summary.lines += 1;
        if opts.duplicates > 0.0 && g.rng.gen_bool(opts.duplicates.min(1.0)) {
            pending_dups.push((i + g.rng.gen_range(1..200), i));
        }
        pending_dups.retain(|&(after, idx)| {
            if after <= i {
                let _ = w.write_all(g.out[idx].json.as_bytes()).and_then(|_| w.write_all(b"\n"));
                summary.duplicates += 1;
                summary.lines += 1;
                false
            } else {
                true
            }
        });
        if opts.malformed > 0.0 && g.rng.gen_bool(opts.malformed.min(1.0)) {
            let line = malformed_line(&mut g.rng, &g.out[i].json);
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
            summary.malformed += 1;
            summary.lines += 1;
        }
    }
    for (_, idx) in pending_dups {
        w.write_all(g.out[idx].json.as_bytes())?;
        w.write_all(b"\n")?;
        summary.duplicates += 1;
        summary.lines += 1;
    }
    w.flush()?;
    Ok(summary)
}

fn malformed_line(rng: &mut ChaCha8Rng, valid: &str) -> String {
    match rng.gen_range(0..5) {
        0 => valid[..valid.len() / 2].to_owned(), // truncated JSON
        1 => valid.replacen("\"aggregate_id\"", "\"aggregate_ref\"", 1).replacen("\"aggregateId\"", "\"aggregateRef\"", 1), // missing field
        2 => valid.replacen("\"sequence\":", "\"sequence\":\"x", 1).replacen("\"x", "\"x\",\"_\":", 1), // mistyped
        3 => "not json at all".to_owned(),
        _ => {
            r#"{"event_id":"","event_type":"X","aggregate_type":"A","aggregate_id":"a","occurred_at":"2026-01-01T00:00:00Z","payload":{}}"#
                .to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use sediment_lake::Envelope;

    fn run(opts: &GenerateOptions) -> (Vec<u8>, GenerateSummary) {
        let mut buf = Vec::new();
        let s = generate(opts, &mut buf).unwrap();
        (buf, s)
    }

    #[test]
    fn deterministic_counts_and_validity() {
        let opts = GenerateOptions { events: 3_000, days: 3, duplicates: 0.05, malformed: 0.02, ..Default::default() };
        let (a, s) = run(&opts);
        let (b, _) = run(&opts);
        assert_eq!(a, b, "same options, same bytes");
        assert_eq!(s.events, 3_000);
        let lines: Vec<&[u8]> = a.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), s.lines);
        let mut ok = std::collections::HashSet::new();
        let mut bad = 0;
        let mut valid_lines = 0;
        for l in &lines {
            match Envelope::parse(l) {
                Ok(e) => {
                    valid_lines += 1;
                    ok.insert(e.event_id);
                }
                Err(_) => bad += 1,
            }
        }
        assert_eq!(ok.len(), s.events);
        assert_eq!(bad, s.malformed);
        assert_eq!(valid_lines, s.events + s.duplicates);
        assert!(s.duplicates > 50 && s.malformed > 20, "{s:?}");
    }

    #[test]
    fn sequences_follow_time_per_aggregate() {
        let (buf, _) = run(&GenerateOptions { events: 5_000, days: 4, ..Default::default() });
        let mut events: Vec<Envelope> = buf.split(|&c| c == b'\n').filter(|l| !l.is_empty()).map(|l| Envelope::parse(l).unwrap()).collect();
        events.sort_by(|a, b| (&a.aggregate_id, a.sequence).cmp(&(&b.aggregate_id, b.sequence)));
        for w in events.windows(2) {
            if w[0].aggregate_id == w[1].aggregate_id {
                assert!(w[0].sequence < w[1].sequence, "{} repeats a sequence", w[0].aggregate_id);
                assert!(w[0].occurred_at_ms <= w[1].occurred_at_ms, "{} goes back in time", w[0].aggregate_id);
            }
        }
        let start = GenerateOptions::default().start;
        assert!(events.iter().all(|e| e.dt() >= start && e.dt() < start + Duration::days(4)));
    }
}
