//! Correlated scalar subqueries in a catalog query's select list, turned
//! into left joins on the syntax tree before DataFusion plans the query.
//!
//! Clients' catalog queries select subqueries that read the outer row — in
//! a `CASE` branch, a comparison, their own select list. SQLAlchemy's column
//! reflection (what Superset lists a table's columns with) selects three:
//!
//! ```sql
//! CASE WHEN pg_attribute.attidentity != '' THEN
//!   (SELECT json_build_object('always', pg_attribute.attidentity = 'a', 'start', pg_sequence.seqstart, …)
//!      FROM pg_sequence WHERE pg_attribute.attidentity != '' AND pg_sequence.seqrelid = …(pg_attribute.attrelid)…)
//! END
//! ```
//!
//! DataFusion's decorrelation (`ScalarSubqueryToJoin`) leaves a subquery
//! whose select list names an outer column in the plan, and physical
//! planning then refuses it. This pass applies the same transformation
//! DataFusion applies to the subqueries it can decorrelate, one level down
//! in the tree where the outer columns are still plain names:
//!
//! ```sql
//! SELECT … CASE WHEN __sq0.present THEN json_build_object('always', pg_attribute.attidentity = 'a', 'start', __sq0.c0, …) END …
//! FROM … LEFT JOIN (SELECT pg_sequence.seqstart AS c0, …, pg_sequence.seqrelid AS c6, TRUE AS present FROM pg_sequence) AS __sq0
//!   ON pg_attribute.attidentity != '' AND __sq0.c6 = …(pg_attribute.attrelid)…
//! ```
//!
//! The subquery's value is computed in the outer row from the matched inner
//! row; no match gives NULL as the scalar subquery does. Like DataFusion's
//! own rewrite it assumes at most one inner row per outer row (Postgres
//! raises an error otherwise; catalog subqueries select by key). Only plain
//! subqueries are lifted: one `SELECT` of one non-aggregate value from one
//! `FROM` item, its `WHERE` a conjunction; uncorrelated ones, aggregates,
//! `DISTINCT`, `GROUP BY`, `LIMIT`, nested subqueries and names the pass
//! cannot place are left to DataFusion as they are.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CaseWhen, Expr, GroupByExpr, Ident, Join, JoinConstraint, JoinOperator, ObjectNamePart, Query, Select, SelectItem,
    SetExpr, Statement, TableAlias, TableFactor, TableWithJoins, Value, Visit, VisitMut, Visitor, VisitorMut,
};

/// Lifts the correlated scalar subqueries of every `SELECT` in `stmt` (inner
/// queries first). `is_aggregate` tells aggregate and window function names.
pub(super) fn decorrelate(stmt: &mut Statement, is_aggregate: &dyn Fn(&str) -> bool) {
    let mut pass = Selects { next: 0, is_aggregate };
    let _ = VisitMut::visit(stmt, &mut pass);
}

struct Selects<'a> {
    /// The next derived table's number (`__sq{n}`), unique in the statement.
    next: usize,
    is_aggregate: &'a dyn Fn(&str) -> bool,
}

impl VisitorMut for Selects<'_> {
    type Break = ();
    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            self.select(select);
        }
        ControlFlow::Continue(())
    }
}

impl Selects<'_> {
    fn select(&mut self, select: &mut Select) {
        if select.from.len() != 1 || !no_grouping(select) {
            return;
        }
        let outer = relations(&select.from[0]);
        let mut joins = Vec::new();
        for item in &mut select.projection {
            let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item else {
                continue;
            };
            sediment_trino::each_own_expr(e, &mut |e| {
                if let Expr::Subquery(q) = e
                    && let Some((value, join)) = lift(q, &outer, self)
                {
                    *e = value;
                    joins.push(join);
                }
            });
        }
        select.from[0].joins.extend(joins);
    }
}

/// A relation in a `FROM` item, by the names a column can be qualified
/// with: its alias, or else its table name (matched on trailing parts, so
/// `pg_attribute.attname` and `pg_catalog.pg_attribute.attname` both name
/// `pg_catalog.pg_attribute`'s column).
#[derive(Debug)]
enum Relation {
    Alias(Ident),
    Table(Vec<Ident>),
}

impl Relation {
    fn qualifies(&self, qualifier: &[Ident]) -> bool {
        match self {
            Relation::Alias(a) => qualifier.len() == 1 && same(a, &qualifier[0]),
            Relation::Table(name) => {
                let n = name.len().min(qualifier.len());
                n > 0 && name[name.len() - n..].iter().zip(&qualifier[qualifier.len() - n..]).all(|(a, b)| same(a, b))
            }
        }
    }
}

fn same(a: &Ident, b: &Ident) -> bool {
    match (a.quote_style, b.quote_style) {
        (None, None) => a.value.eq_ignore_ascii_case(&b.value),
        _ => a.value == b.value,
    }
}

fn relations(from: &TableWithJoins) -> Vec<Relation> {
    let mut out = Vec::new();
    factor_relations(&from.relation, &mut out);
    for j in &from.joins {
        factor_relations(&j.relation, &mut out);
    }
    out
}

fn factor_relations(f: &TableFactor, out: &mut Vec<Relation>) {
    match f {
        TableFactor::Table { alias: Some(a), .. }
        | TableFactor::Derived { alias: Some(a), .. }
        | TableFactor::Function { alias: Some(a), .. }
        | TableFactor::UNNEST { alias: Some(a), .. } => out.push(Relation::Alias(a.name.clone())),
        TableFactor::Table { name, alias: None, .. } => {
            let parts = name.0.iter().filter_map(ObjectNamePart::as_ident).cloned().collect::<Vec<_>>();
            if parts.len() == name.0.len() {
                out.push(Relation::Table(parts));
            }
        }
        TableFactor::NestedJoin { table_with_joins, alias } => match alias {
            Some(a) => out.push(Relation::Alias(a.name.clone())),
            None => out.extend(relations(table_with_joins)),
        },
        _ => {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Inner,
    Outer,
    /// Qualified by a name neither query's `FROM` gives.
    Unknown,
}

fn side(idents: &[Ident], inner: &[Relation], outer: &[Relation]) -> Side {
    // An unqualified name is the subquery's own column (SQL resolves names
    // innermost first); were it the outer row's, the lifted subquery names a
    // column it does not have and planning fails: an error, not an answer.
    let Some((_, qualifier)) = idents.split_last().filter(|(_, q)| !q.is_empty()) else {
        return Side::Inner;
    };
    if inner.iter().any(|r| r.qualifies(qualifier)) {
        Side::Inner
    } else if outer.iter().any(|r| r.qualifies(qualifier)) {
        Side::Outer
    } else {
        Side::Unknown
    }
}

/// What an expression holds, for deciding whether it can be lifted.
#[derive(Default)]
struct Scan {
    inner: bool,
    outer: bool,
    unknown: bool,
    /// A subquery, an aggregate or a window function.
    blocks: bool,
}

fn scan(e: &Expr, inner: &[Relation], outer: &[Relation], is_aggregate: &dyn Fn(&str) -> bool) -> Scan {
    struct V<'a> {
        inner: &'a [Relation],
        outer: &'a [Relation],
        is_aggregate: &'a dyn Fn(&str) -> bool,
        out: Scan,
    }
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let names = match e {
                Expr::Identifier(i) => Some(std::slice::from_ref(i)),
                Expr::CompoundIdentifier(parts) => Some(parts.as_slice()),
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                    self.out.blocks = true;
                    None
                }
                Expr::Function(f) => {
                    let name = f.name.0.last().and_then(ObjectNamePart::as_ident).map(|i| i.value.to_lowercase());
                    if f.over.is_some() || f.filter.is_some() || name.is_some_and(|n| (self.is_aggregate)(&n)) {
                        self.out.blocks = true;
                    }
                    None
                }
                _ => None,
            };
            if let Some(names) = names {
                match side(names, self.inner, self.outer) {
                    Side::Inner => self.out.inner = true,
                    Side::Outer => self.out.outer = true,
                    Side::Unknown => self.out.unknown = true,
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V { inner, outer, is_aggregate, out: Scan::default() };
    let _ = Visit::visit(e, &mut v);
    v.out
}

fn no_grouping(s: &Select) -> bool {
    matches!(&s.group_by, GroupByExpr::Expressions(g, m) if g.is_empty() && m.is_empty()) && s.having.is_none()
}

fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            conjuncts(*left, out);
            conjuncts(*right, out);
        }
        Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: BinaryOperator::And, .. }) => conjuncts(*inner, out),
        other => out.push(other),
    }
}

fn and_all(exprs: Vec<Expr>) -> Option<Expr> {
    exprs.into_iter().reduce(|left, right| Expr::BinaryOp { left: Box::new(left), op: BinaryOperator::And, right: Box::new(right) })
}

/// The lifted form of one subquery: the expression that replaces it and the
/// left join that feeds it, or `None` to leave it to DataFusion.
fn lift(query: &Query, outer: &[Relation], pass: &mut Selects<'_>) -> Option<(Expr, Join)> {
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() || !query.locks.is_empty()
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if select.distinct.is_some()
        || select.top.is_some()
        || select.from.len() != 1
        || select.projection.len() != 1
        || !no_grouping(select)
        || !select.named_window.is_empty()
        || select.qualify.is_some()
        || select.prewhere.is_some()
        || !select.lateral_views.is_empty()
    {
        return None;
    }
    let (SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. }) = &select.projection[0] else {
        return None;
    };
    let inner = relations(&select.from[0]);
    let is_aggregate = pass.is_aggregate;
    let look = |e: &Expr| scan(e, &inner, outer, is_aggregate);

    // The subquery's own joins must not read the outer row.
    for j in &select.from[0].joins {
        if let JoinOperator::Join(JoinConstraint::On(on))
        | JoinOperator::Inner(JoinConstraint::On(on))
        | JoinOperator::Left(JoinConstraint::On(on))
        | JoinOperator::LeftOuter(JoinConstraint::On(on)) = &j.join_operator
        {
            let s = look(on);
            if s.outer || s.unknown || s.blocks {
                return None;
            }
        } else if !matches!(
            &j.join_operator,
            JoinOperator::Join(JoinConstraint::Using(_) | JoinConstraint::None)
                | JoinOperator::Inner(JoinConstraint::Using(_) | JoinConstraint::None)
                | JoinOperator::CrossJoin(JoinConstraint::None)
        ) {
            return None;
        }
    }
    let v = look(value);
    let mut filters = Vec::new();
    if let Some(w) = select.selection.clone() {
        conjuncts(w, &mut filters);
    }
    let scans: Vec<Scan> = filters.iter().map(look).collect();
    if v.blocks || v.unknown || scans.iter().any(|s| s.blocks || s.unknown) {
        return None;
    }
    if !v.outer && !scans.iter().any(|s| s.outer) {
        return None; // uncorrelated: DataFusion plans it as it is
    }

    let alias = Ident::new(format!("__sq{}", pass.next));
    pass.next += 1;
    let (correlated, own): (Vec<_>, Vec<_>) = filters.into_iter().zip(scans).partition(|(_, s)| s.outer);
    let own: Vec<Expr> = own.into_iter().map(|(e, _)| e).collect();
    let mut columns = Columns { alias: &alias, inner: &inner, outer, names: HashMap::new(), exprs: Vec::new() };
    let mut value = value.clone();
    let _ = VisitMut::visit(&mut value, &mut columns);
    let mut on = Vec::with_capacity(correlated.len());
    for (mut e, _) in correlated {
        let _ = VisitMut::visit(&mut e, &mut columns);
        on.push(e);
    }

    let present = Ident::new("present");
    let mut projection: Vec<SelectItem> = columns
        .exprs
        .into_iter()
        .enumerate()
        .map(|(k, expr)| SelectItem::ExprWithAlias { expr, alias: Ident::new(format!("c{k}")) })
        .collect();
    projection.push(SelectItem::ExprWithAlias { expr: Expr::value(Value::Boolean(true)), alias: present.clone() });
    let mut derived = select.as_ref().clone();
    derived.projection = projection;
    derived.selection = and_all(own);
    let mut derived_query = query.clone();
    derived_query.body = Box::new(SetExpr::Select(Box::new(derived)));

    let join = Join {
        relation: TableFactor::Derived {
            lateral: false,
            subquery: Box::new(derived_query),
            alias: Some(TableAlias { explicit: true, name: alias.clone(), columns: vec![], at: None }),
            sample: None,
        },
        global: false,
        join_operator: JoinOperator::LeftOuter(JoinConstraint::On(and_all(on).unwrap_or_else(|| Expr::value(Value::Boolean(true))))),
    };
    let replacement = Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen { condition: Expr::CompoundIdentifier(vec![alias, present]), result: value }],
        else_result: None,
    };
    Some((replacement, join))
}

/// Replaces the subquery's own columns by the derived table's, numbering
/// each distinct one once.
struct Columns<'a> {
    alias: &'a Ident,
    inner: &'a [Relation],
    outer: &'a [Relation],
    names: HashMap<String, usize>,
    exprs: Vec<Expr>,
}

impl VisitorMut for Columns<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let idents = match e {
            Expr::Identifier(i) => std::slice::from_ref(i),
            Expr::CompoundIdentifier(parts) => parts.as_slice(),
            _ => return ControlFlow::Continue(()),
        };
        if side(idents, self.inner, self.outer) == Side::Inner {
            let key = e.to_string();
            let k = *self.names.entry(key).or_insert_with(|| {
                self.exprs.push(e.clone());
                self.exprs.len() - 1
            });
            *e = Expr::CompoundIdentifier(vec![self.alias.clone(), Ident::new(format!("c{k}"))]);
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        decorrelate(&mut stmt, &|n| matches!(n, "count" | "max"));
        stmt.to_string()
    }

    #[test]
    fn a_subquery_reading_the_outer_row_in_its_select_list_becomes_a_left_join() {
        assert_eq!(
            rewritten(
                "SELECT a.name, CASE WHEN a.flag THEN (SELECT json_build_object('k', a.kind, 'v', s.v) FROM pg_catalog.s \
                 WHERE a.flag AND s.id = a.id AND s.live) END AS o FROM pg_catalog.attrs AS a ORDER BY 1"
            ),
            "SELECT a.name, CASE WHEN a.flag THEN CASE WHEN __sq0.present THEN json_build_object('k', a.kind, 'v', __sq0.c0) END \
             END AS o FROM pg_catalog.attrs AS a LEFT OUTER JOIN (SELECT s.v AS c0, s.id AS c1, true AS present \
             FROM pg_catalog.s WHERE s.live) AS __sq0 ON a.flag AND __sq0.c1 = a.id ORDER BY 1"
        );
    }

    #[test]
    fn table_names_qualify_columns_by_their_trailing_parts() {
        assert_eq!(
            rewritten(
                "SELECT (SELECT pg_type.typcollation FROM pg_catalog.pg_type WHERE pg_type.oid = \
                 pg_catalog.pg_attribute.atttypid) != 0 FROM pg_catalog.pg_attribute"
            ),
            "SELECT CASE WHEN __sq0.present THEN __sq0.c0 END <> 0 FROM pg_catalog.pg_attribute LEFT OUTER JOIN \
             (SELECT pg_type.typcollation AS c0, pg_type.oid AS c1, true AS present FROM pg_catalog.pg_type) AS __sq0 \
             ON __sq0.c1 = pg_catalog.pg_attribute.atttypid"
        );
    }

    #[tokio::test]
    async fn the_lifted_query_answers_as_the_correlated_one_would() {
        let ctx = datafusion::prelude::SessionContext::new();
        for ddl in [
            "CREATE TABLE attrs (id INT, kind VARCHAR, flag BOOLEAN) AS VALUES (1, 'a', true), (2, 'b', true), (3, 'c', false)",
            "CREATE TABLE s (id INT, v INT, live BOOLEAN) AS VALUES (1, 10, true), (2, 20, false), (3, 30, true)",
        ] {
            ctx.sql(ddl).await.unwrap().collect().await.unwrap();
        }
        // attrs 1: flagged, live match → its row; 2: match not live → NULL;
        // 3: not flagged → the CASE's NULL.
        let sql = "SELECT a.id, CASE WHEN a.flag THEN (SELECT concat(a.kind, ':', CAST(s.v AS VARCHAR)) FROM s \
                   WHERE s.id = a.id AND s.live) END AS o FROM attrs AS a ORDER BY a.id";
        let lifted = rewritten(sql);
        let batches = ctx.sql(&lifted).await.unwrap().collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        let rows: Vec<&str> = text.lines().skip(3).take(3).collect();
        assert_eq!(rows, ["| 1  | a:10 |", "| 2  |      |", "| 3  |      |"], "{lifted}");
    }

    #[test]
    fn what_datafusion_plans_itself_or_cannot_be_placed_is_left_alone() {
        for sql in [
            // uncorrelated
            "SELECT (SELECT max(x) FROM t) FROM u",
            "SELECT (SELECT t.x FROM t WHERE t.y = 1) FROM u",
            // aggregate, LIMIT, DISTINCT, nested subquery
            "SELECT (SELECT count(*) FROM t WHERE t.k = u.k) FROM u",
            "SELECT (SELECT t.x FROM t WHERE t.k = u.k LIMIT 1) FROM u",
            "SELECT (SELECT DISTINCT t.x FROM t WHERE t.k = u.k) FROM u",
            "SELECT (SELECT t.x FROM t WHERE t.k = (SELECT v.k FROM v WHERE v.j = u.j)) FROM u",
            // a qualifier neither FROM gives; a grouped outer query
            "SELECT (SELECT t.x FROM t WHERE t.k = w.k) FROM u",
            "SELECT u.g, (SELECT t.x FROM t WHERE t.k = u.g) FROM u GROUP BY u.g",
            // two FROM items in the outer query
            "SELECT (SELECT t.x FROM t WHERE t.k = u.k) FROM u, v",
        ] {
            let before = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0).to_string();
            assert_eq!(rewritten(sql), before, "{sql}");
        }
    }
}
