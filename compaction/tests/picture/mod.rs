//! The "picture" notation of the data-driven compaction tests: parsing input pictures into
//! fragment streams, and printing fragment streams back in the same notation.
//!
//! Clustering keys are single `int` values (`encode_key` of `Value::Int`); partition keys are
//! single `text` values, named in the picture. Timestamps and gc times are small integers.
//!
//! ```text
//! tombstone      @ts            deletion_time = ts
//!                @ts/dt         explicit deletion_time
//!                -              no tombstone (printed for closing range tombstone changes)
//! range          [10 .. 50)@5   start `[` inclusive / `(` exclusive, end `]` / `)`; any number of
//!                               dots; `*` is unbounded
//! raw change     rtc before(10) @5      rtc after(30) -      (positions before(k), after(k), `*`)
//! partition      pdel@9         partition tombstone
//! static row     static s1=x@3 s2=dead@4
//! row            row 25 del@7 sdel@8 m@6 c1=x@6 c2=dead@7/3 c3=x@6ttl10exp100
//!                marker: m@ts, m@tsttlNexpE (expiring), mdead@ts[/dt];
//!                row tombstone: del@ts (regular), sdel@ts (shadowable);
//!                cells: cN=value@ts, cN=value@tsttlNexpE, cN=dead@ts[/dt]
//! empty          the partition exists with nothing in it
//! ```
//!
//! An input's items accumulate into an [`InputModel`]: ranges go through `RangeTombstoneList`
//! (canonical, R1.22), raw `rtc` items are emitted exactly as written (they may repeat a
//! position), rows and cells are taken as written (no R1.20 canonicalisation within one input).

#![allow(dead_code)]

use std::collections::BTreeMap;

use talus_format::clustering_encoding::encode_key;
use talus_format::{
    BoundKind, Cell, Cells, ClusteringPrefix, ColumnId, DecoratedKey, Fragment, GcTime, PartitionKey, Position, RangeTombstone,
    RangeTombstoneChange, RangeTombstoneList, Region, Row, RowMarker, RowTombstone, StreamValidator, Timestamp, Tombstone, Value,
};

/// Results of the picture code; errors are messages for the case output.
pub type Res<T> = Result<T, String>;

/// The clustering key of int `v`.
pub fn ck(v: i32) -> ClusteringPrefix {
    ClusteringPrefix::from_encoded(encode_key(&[(Value::Int(v), false)]).into(), 1)
}

/// Decodes a clustering prefix of zero or one int component.
pub fn ck_value(prefix: &ClusteringPrefix) -> Option<i32> {
    let bytes: &[u8] = prefix.encoded();
    let arr: [u8; 4] = bytes.try_into().ok()?;
    let v = (u32::from_be_bytes(arr) ^ 0x8000_0000) as i32;
    (ck(v) == *prefix).then_some(v)
}

/// The decorated key of the partition named `name`.
pub fn pk(name: &str) -> DecoratedKey {
    PartitionKey::from_values(&[Value::Text(name.to_string())]).map(PartitionKey::decorate).unwrap_or_else(|e| {
        unreachable!("text partition key {name:?}: {e}");
    })
}

/// The name of a partition built by [`pk`].
pub fn pk_name(key: &DecoratedKey) -> String {
    String::from_utf8_lossy(key.key.as_bytes()).into_owned()
}

/// A tombstone `(ts, dt)`.
pub fn tomb(ts: i64, dt: i64) -> Tombstone {
    Tombstone::new(Timestamp(ts), GcTime(dt))
}

/// One partition of one input.
#[derive(Debug, Clone, Default)]
pub struct PartitionModel {
    /// Partition tombstone.
    pub tombstone: Tombstone,
    /// Static row, if any.
    pub static_row: Option<Cells>,
    /// Rows by key.
    pub rows: BTreeMap<i32, Row>,
    /// Ranges, canonical.
    pub rts: RangeTombstoneList,
    /// Raw changes, emitted as written (exclusive with `rts`).
    pub raw_changes: Vec<RangeTombstoneChange>,
}

/// One input stream, by partition.
#[derive(Debug, Clone, Default)]
pub struct InputModel {
    /// Partitions in decorated-key order.
    pub partitions: BTreeMap<DecoratedKey, PartitionModel>,
}

impl InputModel {
    /// The partition `name`, created empty if absent.
    pub fn partition(&mut self, name: &str) -> &mut PartitionModel {
        self.partitions.entry(pk(name)).or_default()
    }

    /// The input as a fragment stream, checked by the `StreamValidator`.
    pub fn fragments(&self) -> Res<Vec<Fragment>> {
        let mut out = Vec::new();
        for (key, p) in &self.partitions {
            if !p.raw_changes.is_empty() && !p.rts.is_empty() {
                return Err(format!("partition {}: both ranges and raw rtc items", pk_name(key)));
            }
            out.push(Fragment::PartitionStart { key: key.clone(), tombstone: p.tombstone });
            if let Some(cells) = &p.static_row {
                out.push(Fragment::StaticRow(cells.clone()));
            }
            let changes = if p.raw_changes.is_empty() { p.rts.changes() } else { &p.raw_changes[..] };
            let mut body: Vec<Fragment> = p
                .rows
                .iter()
                .map(|(k, row)| Fragment::Row { key: ck(*k), row: row.clone() })
                .chain(changes.iter().cloned().map(Fragment::RangeTombstoneChange))
                .collect();
            // Stable: raw changes repeating a position keep their written order.
            body.sort_by_key(Fragment::position);
            out.extend(body);
            out.push(Fragment::PartitionEnd);
        }
        validate(&out)?;
        Ok(out)
    }
}

/// Checks `fragments` with the `StreamValidator` (R1.36).
pub fn validate(fragments: &[Fragment]) -> Res<()> {
    let mut v = StreamValidator::new();
    for f in fragments {
        v.check(f).map_err(|e| e.to_string())?;
    }
    v.finish().map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Splits a picture line into items; a range keeps its inner spaces and dots together.
fn tokenize(text: &str) -> Res<Vec<String>> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut tok = String::new();
        if c == '[' || c == '(' {
            // A range: up to the closing bracket, spaces dropped.
            for c in chars.by_ref() {
                if !c.is_whitespace() {
                    tok.push(c);
                }
                if tok.len() > 1 && (c == ']' || c == ')') {
                    break;
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            tok.push(c);
            chars.next();
        }
        tokens.push(tok);
    }
    Ok(tokens)
}

fn int<T: std::str::FromStr>(s: &str, what: &str) -> Res<T> {
    s.parse().map_err(|_| format!("bad {what} {s:?}"))
}

/// `@ts` or `@ts/dt` (the leading `@` optional), or `-`.
pub fn parse_tombstone(s: &str) -> Res<Tombstone> {
    if s == "-" {
        return Ok(Tombstone::NONE);
    }
    let s = s.strip_prefix('@').unwrap_or(s);
    match s.split_once('/') {
        Some((ts, dt)) => Ok(tomb(int(ts, "timestamp")?, int(dt, "deletion time")?)),
        None => {
            let ts = int(s, "timestamp")?;
            Ok(tomb(ts, ts))
        }
    }
}

/// `before(k)`, `after(k)`, with `*` for the empty prefix.
pub fn parse_position(s: &str) -> Res<Position> {
    let (kind, rest) = s.split_once('(').ok_or_else(|| format!("bad position {s:?}"))?;
    let inner = rest.strip_suffix(')').ok_or_else(|| format!("bad position {s:?}"))?;
    let prefix = if inner == "*" { ClusteringPrefix::EMPTY } else { ck(int(inner, "clustering key")?) };
    match kind {
        "before" => Ok(Position::before_key(prefix)),
        "after" => Ok(Position::after_key(prefix)),
        _ => Err(format!("bad position {s:?}")),
    }
}

/// `[a .. b)@t` with spaces already removed.
fn parse_range(tok: &str) -> Res<RangeTombstone> {
    let bad = || format!("bad range {tok:?}");
    let close = tok.find([']', ')']).ok_or_else(bad)?;
    let (body, tomb_part) = tok.split_at(close + 1);
    let inner = &body[1..body.len() - 1];
    let dots = inner.find("..").ok_or_else(bad)?;
    let (a, b) = (&inner[..dots], inner[dots..].trim_start_matches('.'));
    let start_kind = if body.starts_with('[') { BoundKind::InclusiveStart } else { BoundKind::ExclusiveStart };
    let end_kind = if body.ends_with(']') { BoundKind::InclusiveEnd } else { BoundKind::ExclusiveEnd };
    let start = if a == "*" { Position::before_all_rows() } else { start_kind.position(ck(int(a, "range start")?)) };
    let end = if b == "*" { Position::after_all_rows() } else { end_kind.position(ck(int(b, "range end")?)) };
    let tombstone = parse_tombstone(tomb_part.strip_prefix('@').ok_or_else(bad)?)?;
    if start >= end {
        return Err(format!("empty range {tok:?}"));
    }
    Ok(RangeTombstone { start, end, tombstone })
}

/// `value@ts`, `value@tsttlNexpE` or `dead@ts[/dt]`.
pub fn parse_cell(s: &str) -> Res<Cell> {
    let (value, rest) = s.rsplit_once('@').ok_or_else(|| format!("bad cell {s:?}"))?;
    if value == "dead" {
        let t = parse_tombstone(rest)?;
        return Ok(Cell::Dead { timestamp: t.timestamp, deletion_time: t.deletion_time });
    }
    let value = Value::Text(value.to_string()).serialize();
    match rest.split_once("ttl") {
        None => Ok(Cell::Live { timestamp: Timestamp(int(rest, "timestamp")?), value }),
        Some((ts, ttl_exp)) => {
            let (ttl, exp) = ttl_exp.split_once("exp").ok_or_else(|| format!("bad expiring cell {s:?}"))?;
            Ok(Cell::Expiring {
                timestamp: Timestamp(int(ts, "timestamp")?),
                value,
                expiry: GcTime(int(exp, "expiry")?),
                ttl: int(ttl, "ttl")?,
            })
        }
    }
}

fn parse_marker(s: &str) -> Res<RowMarker> {
    if let Some(rest) = s.strip_prefix("mdead@") {
        let t = parse_tombstone(rest)?;
        return Ok(RowMarker::Dead { timestamp: t.timestamp, deletion_time: t.deletion_time });
    }
    let rest = s.strip_prefix("m@").ok_or_else(|| format!("bad marker {s:?}"))?;
    match parse_cell(&format!("x@{rest}"))? {
        Cell::Live { timestamp, .. } => Ok(RowMarker::Live { timestamp }),
        Cell::Expiring { timestamp, expiry, ttl, .. } => Ok(RowMarker::Expiring { timestamp, ttl, expiry }),
        Cell::Dead { .. } => Err(format!("bad marker {s:?}")),
    }
}

/// `cN=...` / `sN=...` with the expected letter.
fn parse_named_cell(tok: &str, letter: char) -> Res<Option<(ColumnId, Cell)>> {
    let Some((name, cell)) = tok.split_once('=') else { return Ok(None) };
    let Some(id) = name.strip_prefix(letter) else { return Ok(None) };
    Ok(Some((ColumnId(int(id, "column id")?), parse_cell(cell)?)))
}

enum Ctx {
    None,
    Row(i32),
    Static,
}

/// Parses the items of one picture line into partition `partition` of `model`.
pub fn parse_items(model: &mut InputModel, partition: &str, text: &str) -> Res<()> {
    if text.trim().is_empty() {
        return Ok(()); // `a:` alone: an input without partitions
    }
    let p = model.partition(partition);
    let tokens = tokenize(text)?;
    let mut ctx = Ctx::None;
    let mut i = 0;
    let next = |i: &mut usize, what: &str| -> Res<String> {
        *i += 1;
        tokens.get(*i).cloned().ok_or_else(|| format!("missing {what}"))
    };
    while i < tokens.len() {
        let tok = tokens[i].clone();
        match tok.as_str() {
            "row" => {
                let k = int(&next(&mut i, "row key")?, "row key")?;
                p.rows.entry(k).or_default();
                ctx = Ctx::Row(k);
            }
            "static" => {
                p.static_row.get_or_insert_with(Cells::new);
                ctx = Ctx::Static;
            }
            "rtc" => {
                let position = parse_position(&next(&mut i, "rtc position")?)?;
                let tombstone = parse_tombstone(&next(&mut i, "rtc tombstone")?)?;
                p.raw_changes.push(RangeTombstoneChange { position, tombstone });
                ctx = Ctx::None;
            }
            "empty" => ctx = Ctx::None,
            t if t.starts_with("pdel@") => {
                p.tombstone.apply(parse_tombstone(&t[5..])?);
                ctx = Ctx::None;
            }
            t if t.starts_with('[') || t.starts_with('(') => {
                p.rts.insert(&parse_range(t)?);
                ctx = Ctx::None;
            }
            t => match ctx {
                Ctx::Row(k) => {
                    let row = p.rows.entry(k).or_default();
                    if let Some(rest) = t.strip_prefix("sdel@") {
                        row.tombstone.shadowable.apply(parse_tombstone(rest)?);
                    } else if let Some(rest) = t.strip_prefix("del@") {
                        let d = parse_tombstone(rest)?;
                        row.tombstone.regular.apply(d);
                        row.tombstone.shadowable.apply(d);
                    } else if t.starts_with("m@") || t.starts_with("mdead@") {
                        row.marker.apply(&parse_marker(t)?);
                    } else if let Some((id, cell)) = parse_named_cell(t, 'c')? {
                        row.cells.apply_cell(id, &cell);
                    } else {
                        return Err(format!("unknown row item {t:?}"));
                    }
                }
                Ctx::Static => {
                    let (id, cell) = parse_named_cell(t, 's')?.ok_or_else(|| format!("unknown static item {t:?}"))?;
                    p.static_row.get_or_insert_with(Cells::new).apply_cell(id, &cell);
                }
                Ctx::None => return Err(format!("unknown item {t:?}")),
            },
        }
        i += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Printing

/// `@ts`, `@ts/dt`, or `-`.
pub fn fmt_tombstone(t: Tombstone) -> String {
    if t.is_none() {
        "-".into()
    } else if t.deletion_time.0 == t.timestamp.0 {
        format!("@{}", t.timestamp.0)
    } else {
        format!("@{}/{}", t.timestamp.0, t.deletion_time.0)
    }
}

/// `before(10)`, `after(*)`, `row(3)`, or the region name.
pub fn fmt_position(p: &Position) -> String {
    if p.region() != Region::Clustered {
        return format!("{:?}", p.region());
    }
    let key = if p.prefix().is_empty() {
        "*".to_string()
    } else {
        ck_value(p.prefix()).map_or_else(|| format!("{:?}", p.prefix()), |v| v.to_string())
    };
    match p.weight() {
        -1 => format!("before({key})"),
        1 => format!("after({key})"),
        _ => format!("row({key})"),
    }
}

/// A cell without its column name.
pub fn fmt_cell(c: &Cell) -> String {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    match c {
        Cell::Live { timestamp, value } => format!("{}@{}", text(value), timestamp.0),
        Cell::Expiring { timestamp, value, expiry, ttl } => {
            format!("{}@{}ttl{}exp{}", text(value), timestamp.0, ttl, expiry.0)
        }
        Cell::Dead { timestamp, deletion_time } => format!("dead{}", fmt_tombstone(Tombstone::new(*timestamp, *deletion_time))),
    }
}

fn fmt_cells(cells: &Cells, letter: char, out: &mut String) {
    for (id, cell) in cells.iter() {
        out.push_str(&format!(" {letter}{}={}", id.0, fmt_cell(cell)));
    }
}

fn fmt_row_tombstone(t: &RowTombstone) -> Option<String> {
    if t.is_none() {
        None
    } else if t.regular == t.shadowable {
        Some(format!("del{}", fmt_tombstone(t.regular)))
    } else if t.regular.is_none() {
        Some(format!("sdel{}", fmt_tombstone(t.shadowable)))
    } else {
        Some(format!("del{} sdel{}", fmt_tombstone(t.regular), fmt_tombstone(t.shadowable)))
    }
}

fn fmt_marker(m: &RowMarker) -> Option<String> {
    match m {
        RowMarker::Missing => None,
        RowMarker::Live { timestamp } => Some(format!("m@{}", timestamp.0)),
        RowMarker::Expiring { timestamp, ttl, expiry } => Some(format!("m@{}ttl{}exp{}", timestamp.0, ttl, expiry.0)),
        RowMarker::Dead { timestamp, deletion_time } => Some(format!("mdead{}", fmt_tombstone(Tombstone::new(*timestamp, *deletion_time)))),
    }
}

/// One fragment in the picture notation (without indentation).
pub fn fmt_fragment(f: &Fragment) -> String {
    match f {
        Fragment::PartitionStart { key, tombstone } => {
            let mut s = format!("partition {}", pk_name(key));
            if tombstone.is_some() {
                s.push_str(&format!(" pdel{}", fmt_tombstone(*tombstone)));
            }
            s
        }
        Fragment::StaticRow(cells) => {
            let mut s = "static".to_string();
            fmt_cells(cells, 's', &mut s);
            s
        }
        Fragment::Row { key, row } => {
            let k = ck_value(key).map_or_else(|| format!("{key:?}"), |v| v.to_string());
            let mut s = format!("row {k}");
            for part in [fmt_row_tombstone(&row.tombstone), fmt_marker(&row.marker)].into_iter().flatten() {
                s.push(' ');
                s.push_str(&part);
            }
            fmt_cells(&row.cells, 'c', &mut s);
            s
        }
        Fragment::RangeTombstoneChange(c) => format!("rtc {} {}", fmt_position(&c.position), fmt_tombstone(c.tombstone)),
        Fragment::PartitionEnd => "end".into(),
    }
}

/// A stream as lines: partition contents indented by two spaces.
pub fn fmt_stream(fragments: &[Fragment]) -> Vec<String> {
    fragments
        .iter()
        .map(|f| match f {
            Fragment::PartitionStart { .. } | Fragment::PartitionEnd => fmt_fragment(f),
            _ => format!("  {}", fmt_fragment(f)),
        })
        .collect()
}
