//! Subquery predicates in a select list: `x IN (SELECT …)`, `x = ANY (…)`,
//! `x <> ALL (…)`, `x > ALL (…)` and the other quantified comparisons, and
//! `EXISTS (…)` as columns (`SELECT id, EXISTS (SELECT 1
//! FROM payments p WHERE p.order_id = o.id) AS paid FROM orders o`).
//!
//! DataFusion plans these predicates only in `WHERE`, as joins; in a select
//! list its physical planner refuses them. They become scalar subqueries,
//! which it plans anywhere:
//!
//! - `EXISTS (q)` → `(SELECT count(*) FROM q's FROM WHERE q's WHERE) > 0` when
//!   q is a plain select (correlation stays where the query wrote it), else
//!   `(SELECT count(*) FROM (q) AS __exists) > 0`;
//! - `x IN (q)` → `CASE WHEN (SELECT count(*) FROM (q)) = 0 THEN false ELSE
//!   contains((SELECT array_agg(c) FROM (q)), x) END`: `contains` has IN's
//!   three-valued answer (NULL when nothing matches and x or an element is
//!   NULL), and x stays outside the subquery, where its names mean what the
//!   query meant. `NOT IN` is its negation.
//!
//! - `x > ALL (q)`, `x <= ANY (q)`, …: a CASE over the subquery's row count,
//!   its non-NULL count and its greatest or least value.
//!
//! Predicates in `WHERE` and `HAVING` are left to DataFusion's joins.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser;
use sqlparser::ast::{BinaryOperator, Expr, Query, SelectItem, SetExpr, TableAlias, TableFactor, Value, VisitMut, VisitorMut};

/// Rewrites the subquery predicates of every select list in `stmt`.
pub(crate) fn rewrite(stmt: &mut sqlparser::ast::Statement) {
    let _ = stmt.visit(&mut SelectLists);
}

struct SelectLists;

impl VisitorMut for SelectLists {
    type Break = ();

    fn post_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        each_select(q.body.as_mut(), &mut |items| {
            for item in items {
                let e = match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                    _ => continue,
                };
                each_own_expr(e, &mut |e| {
                    if let Some(r) = replacement(e) {
                        *e = r;
                    }
                });
            }
        });
        ControlFlow::Continue(())
    }
}

fn each_select(body: &mut SetExpr, f: &mut impl FnMut(&mut Vec<SelectItem>)) {
    match body {
        SetExpr::Select(s) => f(&mut s.projection),
        SetExpr::SetOperation { left, right, .. } => {
            each_select(left, f);
            each_select(right, f);
        }
        _ => {}
    }
}

/// Calls `f` on every expression of `e`, innermost first, except those
/// inside its subqueries (a subquery itself is one expression of `e`).
pub fn each_own_expr(e: &mut Expr, f: &mut dyn FnMut(&mut Expr)) {
    struct Own<'a> {
        depth: usize,
        f: &'a mut dyn FnMut(&mut Expr),
    }
    impl VisitorMut for Own<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.depth == 0 {
                (self.f)(e);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = e.visit(&mut Own { depth: 0, f });
}

fn replacement(e: &Expr) -> Option<Expr> {
    match e {
        Expr::Exists { subquery, negated } => {
            let op = if *negated { BinaryOperator::Eq } else { BinaryOperator::Gt };
            Some(nested(Expr::BinaryOp {
                left: Box::new(Expr::Subquery(Box::new(count_rows(subquery)))),
                op,
                right: Box::new(number("0")),
            }))
        }
        Expr::InSubquery { expr, subquery, negated } => Some(membership(expr, subquery, *negated)),
        Expr::AnyOp { left, compare_op: BinaryOperator::Eq, right, .. } => match right.as_ref() {
            Expr::Subquery(q) => Some(membership(left, q, false)),
            _ => None,
        },
        Expr::AllOp { left, compare_op: BinaryOperator::NotEq, right } => match right.as_ref() {
            Expr::Subquery(q) => Some(membership(left, q, true)),
            _ => None,
        },
        Expr::AnyOp { left, compare_op, right, .. } => match right.as_ref() {
            Expr::Subquery(q) => ordered(left, compare_op, q, false),
            _ => None,
        },
        Expr::AllOp { left, compare_op, right } => match right.as_ref() {
            Expr::Subquery(q) => ordered(left, compare_op, q, true),
            _ => None,
        },
        _ => None,
    }
}

/// `x < ALL (q)`, `x >= ANY (q)`, …: against the subquery's least or
/// greatest value, with the quantifiers' answers for an empty subquery
/// (ALL true, ANY false) and for NULLs (unknown unless decided without them).
fn ordered(x: &Expr, op: &BinaryOperator, q: &Query, all: bool) -> Option<Expr> {
    let greater = match op {
        BinaryOperator::Gt | BinaryOperator::GtEq => true,
        BinaryOperator::Lt | BinaryOperator::LtEq => false,
        _ => return None,
    };
    // ALL compares with the extreme on the far side, ANY with the near one.
    let extreme = if greater == all { "max" } else { "min" };
    let scalar = |agg: Expr| Expr::Subquery(Box::new(over_column(q, agg)));
    let rows = scalar(super::call("count", vec![number("1")]));
    let values = scalar(super::call("count", vec![Expr::Identifier(column())]));
    let bound = scalar(super::call(extreme, vec![Expr::Identifier(column())]));
    let compare = nested(Expr::BinaryOp { left: Box::new(x.clone()), op: op.clone(), right: Box::new(bound) });
    let eq0 = |e: Expr| Expr::BinaryOp { left: Box::new(e), op: BinaryOperator::Eq, right: Box::new(number("0")) };
    let null = Expr::value(Value::Null);
    let yes = Expr::value(Value::Boolean(true));
    let no = Expr::value(Value::Boolean(false));
    let some_null = Expr::BinaryOp { left: Box::new(rows.clone()), op: BinaryOperator::Gt, right: Box::new(values.clone()) };
    let when = |condition: Expr, result: Expr| sqlparser::ast::CaseWhen { condition, result };
    let conditions = if all {
        vec![
            when(eq0(rows), yes.clone()),
            when(Expr::IsNull(Box::new(x.clone())), null.clone()),
            when(eq0(values), null.clone()),
            when(super::not(compare), no),
            when(some_null, null),
        ]
    } else {
        vec![when(eq0(rows), no.clone()), when(Expr::IsNull(Box::new(x.clone())), null.clone()), when(compare, yes), when(some_null, null)]
    };
    let otherwise = if all { Expr::value(Value::Boolean(true)) } else { Expr::value(Value::Boolean(false)) };
    Some(nested(Expr::Case {
        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions,
        else_result: Some(Box::new(otherwise)),
    }))
}

fn nested(e: Expr) -> Expr {
    Expr::Nested(Box::new(e))
}

fn number(n: &str) -> Expr {
    Expr::value(Value::Number(n.into(), false))
}

/// `x IN (q)` with IN's three-valued answer.
fn membership(x: &Expr, q: &Query, negated: bool) -> Expr {
    let empty = Expr::BinaryOp {
        left: Box::new(Expr::Subquery(Box::new(over_column(q, super::call("count", vec![number("1")]))))),
        op: BinaryOperator::Eq,
        right: Box::new(number("0")),
    };
    let values = Expr::Subquery(Box::new(over_column(q, super::call("array_agg", vec![Expr::Identifier(column())]))));
    let answer = Expr::Case {
        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![sqlparser::ast::CaseWhen { condition: empty, result: Expr::value(Value::Boolean(false)) }],
        else_result: Some(Box::new(super::call("contains", vec![values, x.clone()]))),
    };
    if negated { nested(super::not(nested(answer))) } else { nested(answer) }
}

fn column() -> sqlparser::ast::Ident {
    sqlparser::ast::Ident::new("__in_value")
}

/// `SELECT <agg> FROM (q) AS __in(__in_value)`.
fn over_column(q: &Query, agg: Expr) -> Query {
    let alias = TableAlias {
        explicit: true,
        name: sqlparser::ast::Ident::new("__in"),
        columns: vec![sqlparser::ast::TableAliasColumnDef::from_name("__in_value")],
        at: None,
    };
    select_from(agg, TableFactor::Derived { lateral: false, subquery: Box::new(q.clone()), alias: Some(alias), sample: None })
}

/// The rows of `q`, counted.
fn count_rows(q: &Query) -> Query {
    let count = super::call("count", vec![number("1")]);
    if let Some(mut plain) = plain_select(q) {
        if let SetExpr::Select(s) = plain.body.as_mut() {
            s.projection = vec![SelectItem::UnnamedExpr(count)];
        }
        return plain;
    }
    let alias = TableAlias { explicit: true, name: sqlparser::ast::Ident::new("__exists"), columns: vec![], at: None };
    select_from(count, TableFactor::Derived { lateral: false, subquery: Box::new(q.clone()), alias: Some(alias), sample: None })
}

/// `q` when counting its FROM and WHERE counts its rows: one select, with a
/// FROM, without grouping, aggregates (no calls at all in its list),
/// DISTINCT, windows, ORDER BY, LIMIT or OFFSET.
fn plain_select(q: &Query) -> Option<Query> {
    if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
        return None;
    }
    let SetExpr::Select(s) = q.body.as_ref() else { return None };
    let grouped = match &s.group_by {
        sqlparser::ast::GroupByExpr::Expressions(e, m) => !e.is_empty() || !m.is_empty(),
        sqlparser::ast::GroupByExpr::All(_) => true,
    };
    let calls = s.projection.iter().any(|item| {
        let mut found = false;
        let _ = sqlparser::ast::visit_expressions(item, |e| {
            if matches!(e, Expr::Function(_) | Expr::Subquery(_)) {
                found = true;
            }
            ControlFlow::<()>::Continue(())
        });
        found
    });
    let plain = !grouped
        && !calls
        && !s.from.is_empty()
        && s.having.is_none()
        && s.distinct.is_none()
        && s.top.is_none()
        && s.qualify.is_none()
        && s.named_window.is_empty();
    plain.then(|| q.clone())
}

/// `SELECT <item> FROM <relation>`.
fn select_from(item: Expr, relation: TableFactor) -> Query {
    super::select_from(vec![SelectItem::UnnamedExpr(item)], relation, None)
}
