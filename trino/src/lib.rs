//! Athena engine 3 (Trino) SQL on DataFusion.
//!
//! ```text
//!  SQL ─▶ tokens (quoted identifiers folded to lower case, as Trino does)
//!      ─▶ sqlparser AST (Generic dialect + lambdas)
//!      ─▶ rewrite: Trino forms DataFusion lacks or answers differently
//!      ─▶ DataFusion planner, with Trino functions registered by `register`
//! ```
//!
//! Rewrites cover syntax (`AT TIME ZONE`, `EXTRACT(DOW …)`, `FETCH FIRST`,
//! `TABLESAMPLE`, `?` parameters, `try`, `if`, `count_if`, `max_by`…) and
//! semantics that differ silently (`CAST(2.5 AS INTEGER)` rounds, `CAST(ts AS
//! VARCHAR)` prints Trino's text). Functions live in the sibling modules.

pub mod aggregates;
mod arrays;
mod binary;
mod bitwise;
pub mod calls;
mod casts;
mod datetime;
pub mod decimal;
mod hashes;
pub mod integers;
mod joda;
mod json;
mod lambdas;
pub mod limits;
mod maps;
mod misc;
pub mod overflow;
mod stats;
mod strings;
mod subqueries;
pub use json::object_members;
pub use subqueries::each_own_expr;
pub mod types;
mod udf;
mod units;

use std::any::TypeId;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser;
use sqlparser::ast::{
    CastKind, DataType as SqlType, DateTimeField, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, LimitClause, Query,
    Statement, TableFactor, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The Generic dialect plus lambdas (`x -> x + 1`) and Trino's syntax.
///
/// It also bounds the parser's work. sqlparser retries a keyword whose
/// special form failed (`CAST(`, `ARRAY[`, `POSITION(`, …) as an
/// identifier, re-parsing everything inside it, so an error nested n such
/// constructs deep costs 2ⁿ to 3ⁿ parses: 16 levels took 90 s. Every
/// expression the parser starts passes through [`Dialect::parse_prefix`];
/// past a budget proportional to the text, it fails at once, which ends
/// every retry, and the query is refused as too complex.
#[derive(Debug)]
pub struct TrinoDialect {
    generic: GenericDialect,
    prefixes: std::cell::Cell<usize>,
    budget: usize,
}

impl Default for TrinoDialect {
    fn default() -> Self {
        Self::with_budget(usize::MAX)
    }
}

impl TrinoDialect {
    /// A dialect that lets the parser start at most `budget` expressions.
    pub fn with_budget(budget: usize) -> Self {
        Self { generic: GenericDialect, prefixes: Default::default(), budget }
    }

    /// The budget for a query text: a few expressions per byte.
    fn budget_for(sql: &str) -> usize {
        4 * sql.len() + 10_000
    }

    fn exhausted(&self) -> bool {
        self.prefixes.get() > self.budget
    }
}

impl Dialect for TrinoDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }
    /// Athena's `PREPARE name FROM statement` (sqlparser knows Postgres's
    /// `PREPARE name AS statement`).
    fn parse_statement(&self, parser: &mut Parser) -> Option<Result<Statement, sqlparser::parser::ParserError>> {
        use sqlparser::keywords::Keyword;
        let athena_prepare = matches!(&parser.peek_nth_token_ref(0).token, Token::Word(w) if w.keyword == Keyword::PREPARE)
            && matches!(&parser.peek_nth_token_ref(1).token, Token::Word(_))
            && matches!(&parser.peek_nth_token_ref(2).token, Token::Word(w) if w.keyword == Keyword::FROM);
        if !athena_prepare {
            return None;
        }
        Some((|| {
            parser.expect_keyword(Keyword::PREPARE)?;
            let name = parser.parse_identifier()?;
            parser.expect_keyword(Keyword::FROM)?;
            let statement = Box::new(parser.parse_statement()?);
            Ok(Statement::Prepare { name, data_types: vec![], statement })
        })())
    }
    /// `a IS [NOT] DISTINCT FROM b` is a comparison in Trino's grammar: its
    /// right side is a value expression, so `x IS DISTINCT FROM 1 OR y`
    /// is `(x IS DISTINCT FROM 1) OR y` (sqlparser reads the whole rest of
    /// the expression as the right side).
    fn parse_infix(&self, parser: &mut Parser, expr: &Expr, _: u8) -> Option<Result<Expr, sqlparser::parser::ParserError>> {
        use sqlparser::dialect::Precedence;
        use sqlparser::keywords::Keyword;
        let word = |n: usize, k: Keyword| matches!(&parser.peek_nth_token_ref(n).token, Token::Word(w) if w.keyword == k);
        let negated = word(1, Keyword::NOT);
        let at = if negated { 2 } else { 1 };
        if !(word(0, Keyword::IS) && word(at, Keyword::DISTINCT) && word(at + 1, Keyword::FROM)) {
            return None;
        }
        for _ in 0..at + 2 {
            parser.next_token();
        }
        let right = match parser.parse_subexpr(self.prec_value(Precedence::Eq)) {
            Ok(e) => Box::new(e),
            Err(e) => return Some(Err(e)),
        };
        let left = Box::new(expr.clone());
        Some(Ok(if negated { Expr::IsNotDistinctFrom(left, right) } else { Expr::IsDistinctFrom(left, right) }))
    }
    fn parse_prefix(&self, _: &mut Parser) -> Option<Result<Expr, sqlparser::parser::ParserError>> {
        self.prefixes.set(self.prefixes.get().saturating_add(1));
        // RecursionLimitExceeded is the one error sqlparser never retries.
        self.exhausted().then_some(Err(sqlparser::parser::ParserError::RecursionLimitExceeded))
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        self.generic.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.generic.is_identifier_part(ch)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '"'
    }
    fn supports_lambda_functions(&self) -> bool {
        true
    }
    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }
    fn supports_group_by_expr(&self) -> bool {
        true
    }
    fn supports_window_function_null_treatment_arg(&self) -> bool {
        true
    }
    fn supports_array_typedef_with_brackets(&self) -> bool {
        true
    }
}

/// Maximum nesting depth accepted by the parser (parentheses, subqueries,
/// nested calls and CASEs: each level is a recursive call of the parser).
pub const RECURSION_LIMIT: usize = 64;

/// Maximum depth of an expression or query tree after parsing. The parser
/// builds chains of binary operators (`1 + 1 + … + 1`, `a OR b OR …`,
/// `x::int::int…`) in a loop, so their depth is not bounded by
/// [`RECURSION_LIMIT`]; every later walk (rewrites, planning, optimisation,
/// evaluation) recurses once per level. Trees deeper than this are refused
/// before any walk.
pub const MAX_TREE_DEPTH: usize = 1000;

/// Largest query text accepted, in bytes (Athena's limit).
pub const MAX_QUERY_BYTES: usize = 262_144;

/// Refuses a query text over [`MAX_QUERY_BYTES`].
pub fn check_size(sql: &str) -> Result<()> {
    if sql.len() > MAX_QUERY_BYTES {
        return Err(DataFusionError::Plan(format!(
            "QUERY_TOO_LARGE: the query is {} bytes, over the maximum query length of {MAX_QUERY_BYTES} bytes",
            sql.len()
        )));
    }
    Ok(())
}

/// Parses Trino SQL into statements, folding quoted identifiers to lower case.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    check_size(sql)?;
    let dialect = TrinoDialect::with_budget(TrinoDialect::budget_for(sql));
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| DataFusionError::SQL(Box::new(sqlparser::parser::ParserError::TokenizerError(e.to_string())), None))?;
    let tokens = tokens
        .into_iter()
        .map(|mut t| {
            if let Token::Word(w) = &mut t.token
                && w.quote_style == Some('"')
            {
                w.value = w.value.to_lowercase();
            }
            t
        })
        .collect();
    Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(trim_side_alone(type_syntax(parenthesize_values(values_subqueries(tokens)))))
        .parse_statements()
        .map_err(|e| match e {
            _ if dialect.exhausted() => {
                DataFusionError::Plan("QUERY_TOO_COMPLEX: the query is too complex to parse (deeply nested constructs)".into())
            }
            sqlparser::parser::ParserError::RecursionLimitExceeded => DataFusionError::Plan(format!(
                "QUERY_TOO_COMPLEX: the query nests parentheses, subqueries, calls or CASEs more than {RECURSION_LIMIT} levels deep"
            )),
            e => DataFusionError::SQL(Box::new(e), None),
        })
        .and_then(|statements| {
            statements.iter().try_for_each(check_depth)?;
            Ok(statements)
        })
}

/// Most tables, subqueries, CTEs and UNNESTs one query may combine: each is
/// a node of the plan, whose walks recurse once per level and whose
/// optimisation grows faster than the count.
pub const MAX_RELATIONS: usize = 1000;

/// Refuses a statement whose expression, query or set-operation nesting
/// exceeds [`MAX_TREE_DEPTH`], or that combines more than
/// [`MAX_RELATIONS`] relations. The walk stops at the limit, so it never
/// recurses deeper than the limit itself.
pub fn check_depth(stmt: &Statement) -> Result<()> {
    struct Depth {
        now: usize,
        relations: usize,
    }
    fn too_deep<T>() -> ControlFlow<String, T> {
        ControlFlow::Break(format!(
            "QUERY_TOO_COMPLEX: the query nests expressions more than {MAX_TREE_DEPTH} levels deep \
             (a chain of {MAX_TREE_DEPTH} operators such as `a + b + …`, `x OR y OR …` or `… UNION ALL …`); \
             use IN (…), an array or a join instead"
        ))
    }
    /// Depth of a chain of set operations, walked without recursion.
    fn set_depth(body: &sqlparser::ast::SetExpr) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(body, 1usize)];
        while let Some((e, d)) = stack.pop() {
            deepest = deepest.max(d);
            if let sqlparser::ast::SetExpr::SetOperation { left, right, .. } = e {
                stack.push((left, d + 1));
                stack.push((right, d + 1));
            }
        }
        deepest
    }
    impl Depth {
        fn enter(&mut self, by: usize) -> ControlFlow<String> {
            self.now += by;
            if self.now > MAX_TREE_DEPTH { too_deep() } else { ControlFlow::Continue(()) }
        }
    }
    impl sqlparser::ast::Visitor for Depth {
        type Break = String;
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<String> {
            self.enter(1)
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<String> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<String> {
            self.enter(set_depth(&q.body))
        }
        fn post_visit_query(&mut self, q: &Query) -> ControlFlow<String> {
            self.now -= set_depth(&q.body);
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, _: &TableFactor) -> ControlFlow<String> {
            self.relations += 1;
            if self.relations > MAX_RELATIONS {
                return ControlFlow::Break(format!(
                    "QUERY_TOO_COMPLEX: the query combines more than {MAX_RELATIONS} tables, subqueries and CTEs"
                ));
            }
            ControlFlow::Continue(())
        }
    }
    match sqlparser::ast::Visit::visit(stmt, &mut Depth { now: 0, relations: 0 }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(message) => Err(DataFusionError::Plan(message)),
    }
}

/// Trino writes structured types `ARRAY(T)`, `MAP(K, V)` and `ROW(name T,
/// …)`; sqlparser reads `ARRAY<T>`, `MAP(K, V)` and `TUPLE(name T, …)`.
/// Converted where a type is expected: a structured type right after `AS`
/// (a cast's target), and every type inside it.
fn type_syntax(mut tokens: Vec<sqlparser::tokenizer::TokenWithSpan>) -> Vec<sqlparser::tokenizer::TokenWithSpan> {
    use sqlparser::keywords::Keyword;
    let sig: Vec<usize> = (0..tokens.len()).filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_))).collect();
    let keyword = |t: &Token| match t {
        Token::Word(w) => Some(w.keyword),
        _ => None,
    };
    for p in 0..sig.len().saturating_sub(2) {
        let starts = keyword(&tokens[sig[p]].token) == Some(Keyword::AS)
            && matches!(keyword(&tokens[sig[p + 1]].token), Some(Keyword::ARRAY | Keyword::MAP | Keyword::ROW))
            && tokens[sig[p + 2]].token == Token::LParen;
        if starts {
            convert_type(&mut tokens, &sig, p + 1);
        }
    }
    tokens
}

/// Converts the type starting at significant token `q` (see [`type_syntax`]);
/// the position after it, or `None` where the text is not a type (left for
/// the parser to report).
fn convert_type(tokens: &mut [sqlparser::tokenizer::TokenWithSpan], sig: &[usize], q: usize) -> Option<usize> {
    use sqlparser::keywords::Keyword;
    let at = |tokens: &[sqlparser::tokenizer::TokenWithSpan], i: usize| sig.get(i).map(|&j| tokens[j].token.clone());
    let word = match at(tokens, q)? {
        Token::Word(w) => w,
        _ => return None,
    };
    let opens = at(tokens, q + 1) == Some(Token::LParen);
    match word.keyword {
        Keyword::ARRAY if opens => {
            let end = convert_type(tokens, sig, q + 2)?;
            (at(tokens, end)? == Token::RParen).then_some(())?;
            tokens[sig[q + 1]].token = Token::Lt;
            tokens[sig[end]].token = Token::Gt;
            Some(end + 1)
        }
        Keyword::MAP if opens => {
            let comma = convert_type(tokens, sig, q + 2)?;
            (at(tokens, comma)? == Token::Comma).then_some(())?;
            let end = convert_type(tokens, sig, comma + 1)?;
            (at(tokens, end)? == Token::RParen).then_some(end + 1)
        }
        Keyword::ROW if opens => {
            tokens[sig[q]].token = Token::make_keyword("TUPLE");
            let mut i = q + 2;
            loop {
                // `name type` or a bare type.
                if matches!(at(tokens, i)?, Token::Word(_)) && matches!(at(tokens, i + 1)?, Token::Word(_)) {
                    i += 1;
                }
                i = convert_type(tokens, sig, i)?;
                match at(tokens, i)? {
                    Token::Comma => i += 1,
                    Token::RParen => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        _ => {
            // A scalar type: up to the `,` or `)` that ends it.
            let mut i = q + 1;
            let mut depth = 0;
            loop {
                match at(tokens, i)? {
                    Token::Comma | Token::RParen if depth == 0 => return Some(i),
                    Token::LParen => depth += 1,
                    Token::RParen => depth -= 1,
                    Token::EOF => return None,
                    _ => {}
                }
                i += 1;
            }
        }
    }
}

/// Trino accepts `trim(LEADING FROM s)` (a side without characters: spaces);
/// sqlparser needs the characters, so `' '` is put in.
fn trim_side_alone(tokens: Vec<sqlparser::tokenizer::TokenWithSpan>) -> Vec<sqlparser::tokenizer::TokenWithSpan> {
    use sqlparser::keywords::Keyword;
    let significant: Vec<usize> = (0..tokens.len()).filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_))).collect();
    let keyword = |i: usize, k: Keyword| matches!(&tokens[i].token, Token::Word(w) if w.keyword == k);
    let mut insert_after = std::collections::HashSet::new();
    for w in significant.windows(4) {
        let side = keyword(w[2], Keyword::LEADING) || keyword(w[2], Keyword::TRAILING) || keyword(w[2], Keyword::BOTH);
        if keyword(w[0], Keyword::TRIM) && tokens[w[1]].token == Token::LParen && side && keyword(w[3], Keyword::FROM) {
            insert_after.insert(w[2]);
        }
    }
    if insert_after.is_empty() {
        return tokens;
    }
    let mut out = Vec::with_capacity(tokens.len() + 2 * insert_after.len());
    for (i, t) in tokens.into_iter().enumerate() {
        out.push(t);
        if insert_after.contains(&i) {
            out.push(sqlparser::tokenizer::TokenWithSpan::wrap(Token::Whitespace(sqlparser::tokenizer::Whitespace::Space)));
            out.push(sqlparser::tokenizer::TokenWithSpan::wrap(Token::SingleQuotedString(" ".into())));
        }
    }
    out
}

/// Trino accepts `x IN (VALUES …)` and `x = ANY (VALUES …)`; sqlparser reads
/// a subquery there only when it starts with SELECT, so `(VALUES …)`
/// becomes `(SELECT * FROM (VALUES …))`.
fn values_subqueries(tokens: Vec<sqlparser::tokenizer::TokenWithSpan>) -> Vec<sqlparser::tokenizer::TokenWithSpan> {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::TokenWithSpan;
    let sig: Vec<usize> = (0..tokens.len()).filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_))).collect();
    let keyword = |i: usize| match &tokens[i].token {
        Token::Word(w) => Some(w.keyword),
        _ => None,
    };
    // Positions (in `tokens`) of each `(` to open and of its matching `)`.
    let mut opens = std::collections::HashSet::new();
    let mut closes = std::collections::HashSet::new();
    for p in 0..sig.len().saturating_sub(2) {
        let quantifier = matches!(keyword(sig[p]), Some(Keyword::ANY | Keyword::ALL | Keyword::SOME | Keyword::IN));
        if !(quantifier && tokens[sig[p + 1]].token == Token::LParen && keyword(sig[p + 2]) == Some(Keyword::VALUES)) {
            continue;
        }
        let mut depth = 0;
        for &j in &sig[p + 1..] {
            match tokens[j].token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        opens.insert(sig[p + 1]);
                        closes.insert(j);
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    if opens.is_empty() {
        return tokens;
    }
    let space = || TokenWithSpan::wrap(Token::Whitespace(sqlparser::tokenizer::Whitespace::Space));
    let mut out = Vec::with_capacity(tokens.len() + 8 * opens.len());
    for (i, t) in tokens.into_iter().enumerate() {
        if closes.contains(&i) {
            out.push(TokenWithSpan::wrap(Token::RParen));
        }
        let open = opens.contains(&i);
        out.push(t);
        if open {
            for t in [Token::make_keyword("SELECT"), Token::Mul, Token::make_keyword("FROM"), Token::LParen] {
                out.push(space());
                out.push(TokenWithSpan::wrap(t));
            }
        }
    }
    out
}

/// Trino accepts `VALUES 1, 2, 3` (one-column rows without parentheses);
/// sqlparser needs `VALUES (1), (2), (3)`.
fn parenthesize_values(tokens: Vec<sqlparser::tokenizer::TokenWithSpan>) -> Vec<sqlparser::tokenizer::TokenWithSpan> {
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::TokenWithSpan;
    let wrap = |t: Token| TokenWithSpan::wrap(t);
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let is_values = matches!(&tokens[i].token, Token::Word(w) if w.keyword == Keyword::VALUES);
        out.push(tokens[i].clone());
        i += 1;
        if !is_values {
            continue;
        }
        let next = tokens[i..].iter().position(|t| !matches!(t.token, Token::Whitespace(_))).map(|p| i + p);
        if next.is_none_or(|n| tokens[n].token == Token::LParen) {
            continue;
        }
        // Wrap each top-level, comma-separated element until the list ends.
        out.push(wrap(Token::LParen));
        let mut depth = 0i32;
        while i < tokens.len() {
            let t = &tokens[i].token;
            let ends = depth == 0
                && (matches!(t, Token::RParen | Token::SemiColon | Token::EOF)
                    || matches!(t, Token::Word(w) if matches!(w.keyword, Keyword::AS | Keyword::ORDER | Keyword::LIMIT | Keyword::UNION | Keyword::OFFSET | Keyword::FETCH)));
            if ends {
                break;
            }
            match t {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::Comma if depth == 0 => {
                    out.push(wrap(Token::RParen));
                    out.push(tokens[i].clone());
                    out.push(wrap(Token::LParen));
                    i += 1;
                    continue;
                }
                _ => {}
            }
            out.push(tokens[i].clone());
            i += 1;
        }
        out.push(wrap(Token::RParen));
    }
    out
}

fn binary(left: Expr, op: sqlparser::ast::BinaryOperator, right: Expr) -> Expr {
    Expr::Nested(Box::new(Expr::BinaryOp { left: Box::new(left), op, right: Box::new(right) }))
}

/// A double constant written as SQL (`CAST('Infinity' AS DOUBLE)`).
fn double_text(text: &str) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(Expr::value(Value::SingleQuotedString(text.into()))),
        data_type: SqlType::Double(sqlparser::ast::ExactNumberInfo::None),
        format: None,
        array: false,
    }
}

fn double(x: f64) -> Expr {
    double_text(&x.to_string())
}

fn not(e: Expr) -> Expr {
    Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Not, expr: Box::new(e) }
}

/// Parses one expression (for rewrites built from text).
fn parse_expr(text: &str) -> Result<Expr, String> {
    let dialect = TrinoDialect::with_budget(TrinoDialect::budget_for(text));
    Parser::new(&dialect).try_with_sql(text).and_then(|mut p| p.parse_expr()).map_err(|e| format!("{e} in rewritten {text:?}"))
}

/// Registers the Trino functions on a session, and bounds the functions an
/// argument can make unbounded by the session's memory pool (see `limits`).
pub fn register(ctx: &SessionContext) {
    for f in json::functions()
        .into_iter()
        .chain(binary::functions())
        .chain(datetime::functions())
        .chain(strings::functions())
        .chain(misc::functions())
        .chain(maps::functions())
        .chain(arrays::functions())
        .chain(bitwise::functions())
        .chain(stats::functions())
        .chain(joda::functions())
        .chain(units::functions())
        .chain(overflow::functions())
        .chain(casts::functions())
    {
        ctx.register_udf(f);
    }
    for f in maps::aggregates().into_iter().chain(bitwise::aggregates()).chain(stats::aggregates()) {
        ctx.register_udaf(f);
    }
    lambdas::register(ctx, Arc::clone(&ctx.runtime_env().memory_pool));
    limits::register(ctx, Arc::clone(&ctx.runtime_env().memory_pool));
}

/// Parses execution parameters (Athena's `ExecutionParameters`: each a SQL
/// literal) into expressions.
pub fn parse_params(params: &[String]) -> Result<Vec<Expr>> {
    params.iter().map(|p| parse_expr(p).map_err(|e| DataFusionError::Plan(format!("execution parameter {p:?}: {e}")))).collect()
}

/// Rewrites a parsed statement into DataFusion's forms, putting `params`
/// in place of the `?`s in order, or of the numbered `$1`, `$2`, … (the
/// Postgres protocol's placeholders). With no `params`, numbered
/// placeholders stay for the planner to type (a statement described
/// before its values are bound).
pub fn rewrite(stmt: &mut Statement, params: Vec<Expr>) -> Result<()> {
    rewrite_with(stmt, params, false)
}

/// [`rewrite`] for a statement described before its values are bound: each
/// `?` becomes the numbered placeholder of its position (`$1`, `$2`, …),
/// which the planner types from what it is compared with.
pub fn rewrite_unbound(stmt: &mut Statement) -> Result<()> {
    rewrite_with(stmt, Vec::new(), true)
}

fn rewrite_with(stmt: &mut Statement, params: Vec<Expr>, unbound: bool) -> Result<()> {
    subqueries::rewrite(stmt);
    let mut r = Rewriter { params: 0, numbered: 0, values: params, unbound };
    if let ControlFlow::Break(e) = stmt.visit(&mut r) {
        return Err(DataFusionError::Plan(e));
    }
    if r.numbered > 0 {
        if r.params > 0 {
            return Err(DataFusionError::Plan("a query uses either ? or $n parameters, not both".into()));
        }
        if !r.values.is_empty() && r.values.len() < r.numbered {
            return Err(DataFusionError::Plan(format!(
                "the query has parameter ${} but {} value(s) were given",
                r.numbered,
                r.values.len()
            )));
        }
        return Ok(());
    }
    if r.params != r.values.len() && !unbound {
        return Err(DataFusionError::Plan(format!(
            "the query has {} parameter(s) (?) but {} value(s) were given",
            r.params,
            r.values.len()
        )));
    }
    Ok(())
}

/// Runs Trino SQL (one statement, no parameters) as a DataFrame on `ctx`,
/// whose session must have the Trino functions [`register`]ed.
pub async fn sql(ctx: &SessionContext, text: &str) -> Result<datafusion::dataframe::DataFrame> {
    let mut statements = parse(text)?;
    if statements.len() != 1 {
        return Err(DataFusionError::Plan(format!("expected one statement, got {}", statements.len())));
    }
    let mut stmt = statements.remove(0);
    rewrite(&mut stmt, vec![])?;
    let plan = plan(&ctx.state(), stmt).await?;
    ctx.execute_logical_plan(plan).await
}

/// Plans one rewritten statement on a session.
pub async fn plan(state: &SessionState, stmt: Statement) -> Result<LogicalPlan> {
    let plan = state.statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(stmt))).await?;
    name_field_columns(plan)
}

/// Trino names a result column `r.f` (a row's field) `f`; DataFusion's
/// name is `r[f]`. Renamed by a projection over the plan, where the name
/// is not already taken.
fn name_field_columns(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::logical_expr::{Expr as DfExpr, LogicalPlanBuilder, col};
    let mut top = &plan;
    while let LogicalPlan::Sort(_) | LogicalPlan::Limit(_) = top {
        top = top.inputs()[0];
    }
    let LogicalPlan::Projection(p) = top else { return Ok(plan) };
    let fields: Vec<Option<String>> = p
        .expr
        .iter()
        .map(|e| match e {
            DfExpr::ScalarFunction(f) if f.name() == "get_field" => match f.args.last() {
                Some(DfExpr::Literal(datafusion::common::ScalarValue::Utf8(Some(name)), _)) => Some(name.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    if fields.iter().all(Option::is_none) {
        return Ok(plan);
    }
    let schema = Arc::clone(plan.schema());
    let mut taken: std::collections::HashSet<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let exprs: Vec<DfExpr> = schema
        .columns()
        .into_iter()
        .zip(fields)
        .map(|(c, field)| match field {
            Some(name) if taken.insert(name.clone()) => col(c).alias(name),
            _ => col(c),
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// A `[…]` subscript (not a slice, not a `.field`).
fn is_index(access: &sqlparser::ast::AccessExpr) -> bool {
    use sqlparser::ast::{AccessExpr, Subscript};
    matches!(access, AccessExpr::Subscript(Subscript::Index { .. }))
}

/// `arrow_cast(e, 'Timestamp(unit, "zone")')`: a wall-clock timestamp read
/// in `zone`.
fn zoned_cast(e: Expr, unit: &str, zone: &str) -> Expr {
    call("arrow_cast", vec![e, Expr::value(Value::SingleQuotedString(format!("Timestamp({unit}, \"{zone}\")")))])
}

/// A timestamp literal as its date, its time (digits and `separators`) and
/// what follows the time.
fn date_time_tail<'a>(text: &'a str, separators: &[char]) -> Option<(&'a str, &'a str, &'a str)> {
    let (date, rest) = text.trim().split_once(' ')?;
    let time_len = rest.find(|c: char| !(c.is_ascii_digit() || separators.contains(&c))).unwrap_or(rest.len());
    let (time, tail) = rest.split_at(time_len);
    Some((date, time, tail))
}

/// A timestamp literal's wall-clock part and zone (`UTC` for `Z`), when it
/// names one after its time.
fn split_zone(text: &str) -> Option<(String, String)> {
    let (date, time, zone) = date_time_tail(text, &[':', '.'])?;
    let zone = zone.trim();
    if zone.is_empty() || time.is_empty() {
        return None;
    }
    let zone = if zone.eq_ignore_ascii_case("z") { "UTC" } else { zone };
    Some((format!("{date} {time}"), zone.to_owned()))
}

/// `YYYY-MM-DD HH:MM` with `:00` seconds added (the rest of a literal, a
/// zone say, kept); `None` when the literal has its seconds or no time.
fn with_seconds(text: &str) -> Option<String> {
    let (date, time, tail) = date_time_tail(text, &[':'])?;
    let parts: Vec<&str> = time.split(':').collect();
    (parts.len() == 2 && parts.iter().all(|p| !p.is_empty())).then(|| format!("{date} {time}:00{tail}"))
}

/// Refuses the numeric literals Trino refuses, rather than letting them
/// become an infinite or rounded double: an integer beyond bigint, a
/// decimal of more than 38 digits, a double beyond its range.
fn check_number(text: &str) -> Result<(), String> {
    let invalid = || format!("INVALID_LITERAL: Invalid numeric literal: {}", text.chars().take(60).collect::<String>());
    if text.contains(['e', 'E']) {
        return if text.parse::<f64>().is_ok_and(f64::is_finite) { Ok(()) } else { Err(invalid()) };
    }
    if text.contains('.') {
        let digits = text.trim_start_matches(['0', '.']).chars().filter(char::is_ascii_digit).count();
        return if digits <= 38 { Ok(()) } else { Err(invalid()) };
    }
    text.parse::<i64>().map(|_| ()).map_err(|_| invalid())
}

/// Trino functions with a DataFusion namesake that answers differently, or
/// that no registry has under another name: refused by name.
pub const UNSUPPORTED: &[&str] = &["reduce_agg", "current_user"];

/// Trino functions the rewriter turns into DataFusion forms (beside those
/// registered under their Trino names).
pub const REWRITTEN: &[&str] = &[
    "approx_percentile",
    "md5",
    "sha256",
    "sha512",
    "arbitrary",
    "any_value",
    "every",
    "count_if",
    "max_by",
    "min_by",
    "typeof",
    "contains",
    "transform",
    "any_match",
    "none_match",
    "all_match",
    "rand",
    "array_join",
    "array_position",
    "array_remove",
    "filter",
    "ceiling",
    "is_nan",
    "is_finite",
    "is_infinite",
    "infinity",
    "nan",
    "e",
    "mod",
    "sign",
    "truncate",
    "euclidean_distance",
    "current_timezone",
    "at_timezone",
    "with_timezone",
    "listagg",
    "array_last",
];

struct Rewriter {
    /// `?` placeholders seen so far.
    params: usize,
    /// The highest `$n` seen.
    numbered: usize,
    values: Vec<Expr>,
    /// `?`s become `$n` (see [`rewrite_unbound`]).
    unbound: bool,
}

/// `n` of a `$n` placeholder.
fn placeholder_number(p: &str) -> Option<usize> {
    p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).filter(|n| *n > 0)
}

fn fn_name(f: &Function) -> String {
    f.name.to_string().to_lowercase()
}

fn args(f: &Function) -> Vec<Expr> {
    match &f.args {
        FunctionArguments::List(l) => l
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn rename(f: &mut Function, to: &str) {
    f.name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(to)]);
}

/// Whether an expression is of Trino's JSON type: a JSON literal or cast
/// (as rewritten), or a function that returns JSON.
fn is_json_valued(e: &Expr) -> bool {
    match e {
        Expr::Nested(inner) => is_json_valued(inner),
        Expr::Function(f) => matches!(fn_name(f).as_str(), "json_parse" | "__to_json" | "json_extract" | "json_array_get"),
        _ => false,
    }
}

/// The scalar types a JSON value casts to besides varchar and the integers.
fn is_json_scalar_target(t: &SqlType) -> bool {
    matches!(t, SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Real | SqlType::Float(_) | SqlType::Boolean | SqlType::Bool)
}

/// A call of the function `name` on `args`, as a syntax tree.
pub fn call(name: &str, args: Vec<Expr>) -> Expr {
    let list = args.into_iter().map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e))).collect();
    Expr::Function(Function {
        name: sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(sqlparser::ast::FunctionArgumentList { duplicate_treatment: None, args: list, clauses: vec![] }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `CASE WHEN condition THEN result [ELSE otherwise] END`.
fn case(condition: Expr, result: Expr, otherwise: Option<Expr>) -> Expr {
    Expr::Case {
        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![sqlparser::ast::CaseWhen { condition, result }],
        else_result: otherwise.map(Box::new),
    }
}

fn is_integer_type(t: &SqlType) -> bool {
    matches!(
        t,
        SqlType::Int(_)
            | SqlType::Integer(_)
            | SqlType::BigInt(_)
            | SqlType::SmallInt(_)
            | SqlType::TinyInt(_)
            | SqlType::Int64
            | SqlType::Int32
    )
}

fn is_varchar_type(t: &SqlType) -> bool {
    matches!(t, SqlType::Varchar(_) | SqlType::String(_) | SqlType::Text | SqlType::CharacterVarying(_))
}

/// Whether a cast target needs `__cast_to`: a map or row anywhere in it,
/// or an array of JSON nested in another array.
fn is_structured_type(t: &SqlType) -> bool {
    match t {
        SqlType::Map(..) | SqlType::Tuple(_) | SqlType::Struct(..) => true,
        SqlType::Array(sqlparser::ast::ArrayElemTypeDef::AngleBracket(e) | sqlparser::ast::ArrayElemTypeDef::Parenthesis(e)) => {
            is_structured_type(e) || matches!(e.as_ref(), SqlType::Array(_))
        }
        _ => false,
    }
}

/// A cast's target type as a [`casts::Shape`].
fn shape_of(t: &SqlType) -> Result<casts::Shape, String> {
    use casts::Shape;
    use sqlparser::ast::{ArrayElemTypeDef, ExactNumberInfo, TimezoneInfo};
    let scalar = |d: arrow::datatypes::DataType| Ok(Shape::Scalar(d));
    use arrow::datatypes::DataType as A;
    match t {
        SqlType::JSON => Ok(Shape::Json),
        SqlType::Boolean | SqlType::Bool => scalar(A::Boolean),
        SqlType::TinyInt(_) => scalar(A::Int8),
        SqlType::SmallInt(_) => scalar(A::Int16),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int32 => scalar(A::Int32),
        SqlType::BigInt(_) | SqlType::Int64 => scalar(A::Int64),
        SqlType::Real | SqlType::Float4 => scalar(A::Float32),
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 | SqlType::Float(_) | SqlType::Float64 => scalar(A::Float64),
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => {
            let (p, s) = match info {
                ExactNumberInfo::None => (38, 0),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s as u64),
            };
            if !(1..=38).contains(&p) || s > p {
                return Err(format!("INVALID_CAST_ARGUMENT: DECIMAL({p}, {s}) is not a valid type"));
            }
            scalar(A::Decimal128(p as u8, s as i8))
        }
        t if is_varchar_type(t) || matches!(t, SqlType::Char(_) | SqlType::Character(_)) => scalar(A::Utf8),
        SqlType::Varbinary(_) | SqlType::Binary(_) | SqlType::Blob(_) | SqlType::Bytea => scalar(A::Binary),
        SqlType::Date => scalar(A::Date32),
        SqlType::Timestamp(p, zone) => {
            let unit = casts::time_unit(p.map(|p| p as i64).unwrap_or(3));
            let tz = matches!(zone, TimezoneInfo::WithTimeZone).then(|| "UTC".into());
            scalar(A::Timestamp(unit, tz))
        }
        SqlType::Array(ArrayElemTypeDef::AngleBracket(e) | ArrayElemTypeDef::Parenthesis(e) | ArrayElemTypeDef::SquareBracket(e, _)) => {
            Ok(Shape::Array(Box::new(shape_of(e)?)))
        }
        SqlType::Map(k, v) => Ok(Shape::Map(Box::new(shape_of(k)?), Box::new(shape_of(v)?))),
        SqlType::Tuple(fields) | SqlType::Struct(fields, _) => Ok(Shape::Row(
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let name = f.field_name.as_ref().map(|n| n.value.to_lowercase()).unwrap_or_else(|| format!("field{i}"));
                    Ok((name, shape_of(&f.field_type)?))
                })
                .collect::<Result<_, String>>()?,
        )),
        other => Err(format!("NOT_SUPPORTED: cast to {other} is not supported")),
    }
}

/// Inside a lambda: `p.f.g` where `p` is a parameter becomes field
/// accesses on `p`.
struct LambdaFields {
    params: Vec<String>,
}

impl VisitorMut for LambdaFields {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(parts) = expr
            && parts.len() > 1
            && self.params.contains(&parts[0].value.to_lowercase())
        {
            let root = Expr::Identifier(parts[0].clone());
            let access_chain = parts[1..]
                .iter()
                .map(|f| {
                    let name = if f.quote_style.is_some() { f.value.clone() } else { f.value.to_lowercase() };
                    sqlparser::ast::AccessExpr::Dot(Expr::value(Value::SingleQuotedString(name)))
                })
                .collect();
            *expr = Expr::CompoundFieldAccess { root: Box::new(root), access_chain };
        }
        ControlFlow::Continue(())
    }
}

/// `slice(array_agg(x ORDER BY y DESC|ASC) FILTER (WHERE y IS NOT NULL), 1, n)`:
/// Trino's `max_by(x, y, n)`, `min_by(x, y, n)`, `max(x, n)` and `min(x, n)`
/// (keeping a FILTER the call had).
fn top_n(f: &mut Function, x: &Expr, y: &Expr, n: &Expr, largest: bool) -> Expr {
    let order = sqlparser::ast::OrderByExpr {
        expr: y.clone(),
        options: sqlparser::ast::OrderByOptions { asc: Some(!largest), nulls_first: Some(false) },
        with_fill: None,
    };
    let mut agg = call("array_agg", vec![x.clone()]);
    if let Expr::Function(g) = &mut agg {
        if let FunctionArguments::List(l) = &mut g.args {
            l.clauses.push(sqlparser::ast::FunctionArgumentClause::OrderBy(vec![order]));
        }
        let known = Expr::IsNotNull(Box::new(y.clone()));
        g.filter = Some(Box::new(match f.filter.take() {
            Some(filter) => binary(*filter, sqlparser::ast::BinaryOperator::And, known),
            None => known,
        }));
    }
    call("slice", vec![agg, Expr::value(Value::Number("1".into(), false)), n.clone()])
}

/// Inside `try(…)`: failing casts and division by zero give NULL.
struct Tryer;

impl VisitorMut for Tryer {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Cast { kind, .. } if matches!(kind, CastKind::Cast | CastKind::DoubleColon) => *kind = CastKind::TryCast,
            Expr::BinaryOp { op: sqlparser::ast::BinaryOperator::Divide | sqlparser::ast::BinaryOperator::Modulo, right, .. } => {
                let r = std::mem::replace(right.as_mut(), Expr::value(Value::Null));
                **right = call("nullif", vec![r, Expr::value(Value::Number("0".into(), false))]);
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

impl Rewriter {
    fn function(&mut self, f: &mut Function) -> Result<Option<Expr>, String> {
        let name = fn_name(f);
        let a = args(f);
        Ok(match name.as_str() {
            "approx_percentile" => match a.as_slice() {
                [x, Expr::Array(arr)] => {
                    let parts = arr.elem.iter().map(|p| call("approx_percentile_cont", vec![x.clone(), p.clone()])).collect();
                    Some(call("make_array", parts))
                }
                _ => {
                    rename(f, "approx_percentile_cont");
                    None
                }
            },
            // Trino hashes varbinary to varbinary: DataFusion's `digest`.
            "md5" | "sha256" | "sha512" => match a.as_slice() {
                [x] => Some(call("digest", vec![x.clone(), Expr::value(Value::SingleQuotedString(name.clone()))])),
                _ => return Err(format!("{name} takes one argument")),
            },
            // Trino: 0 where the element is absent (DataFusion: NULL).
            "array_position" => match a.as_slice() {
                [arr, x] => Some(call(
                    "coalesce",
                    vec![call("array_position", vec![arr.clone(), x.clone()]), Expr::value(Value::Number("0".into(), false))],
                )),
                _ => return Err("array_position takes two arguments".into()),
            },
            // Trino removes every equal element (DataFusion's array_remove: the first).
            "array_remove" => {
                rename(f, "array_remove_all");
                None
            }
            "arbitrary" | "any_value" => {
                rename(f, "first_value");
                None
            }
            "every" => {
                rename(f, "bool_and");
                None
            }
            "count_if" => match a.as_slice() {
                [c] => Some(call("count", vec![case(c.clone(), Expr::value(Value::Number("1".into(), false)), None)])),
                _ => return Err("count_if takes one argument".into()),
            },
            "max_by" | "min_by" => match a.as_slice() {
                [x, y] => {
                    let dir = if name == "max_by" { "DESC" } else { "ASC" };
                    let order = sqlparser::ast::OrderByExpr {
                        expr: y.clone(),
                        options: sqlparser::ast::OrderByOptions { asc: Some(dir == "ASC"), nulls_first: Some(false) },
                        with_fill: None,
                    };
                    let mut e = call("first_value", vec![x.clone()]);
                    if let Expr::Function(Function { args: FunctionArguments::List(l), .. }) = &mut e {
                        l.clauses.push(sqlparser::ast::FunctionArgumentClause::OrderBy(vec![order]));
                    }
                    if let (Expr::Function(g), Some(filter)) = (&mut e, f.filter.take()) {
                        g.filter = Some(filter);
                    }
                    Some(e)
                }
                [x, y, n] => Some(top_n(f, x, y, n, name == "max_by")),
                _ => return Err(format!("{name} takes two or three arguments")),
            },
            // max(x, n) / min(x, n): the n largest / smallest values, in that order.
            "max" | "min" if a.len() == 2 && f.over.is_none() => Some(top_n(f, &a[0], &a[0], &a[1], name == "max")),
            // The error bound picks Trino's sketch size; DataFusion's HyperLogLog
            // has one size (about 0.8% standard error, within Trino's default 2.3%).
            "approx_distinct" if a.len() == 2 => Some(call("approx_distinct", vec![a[0].clone()])),
            "if" => match a.as_slice() {
                [c, t] => Some(case(c.clone(), t.clone(), None)),
                [c, t, e] => Some(case(c.clone(), t.clone(), Some(e.clone()))),
                _ => return Err("if takes two or three arguments".into()),
            },
            // A varchar literal's type carries its length in Trino.
            "typeof" => match a.as_slice() {
                [Expr::Value(v)] if matches!(&v.value, Value::SingleQuotedString(_)) => {
                    let Value::SingleQuotedString(text) = &v.value else { unreachable!("matched a string") };
                    Some(Expr::value(Value::SingleQuotedString(format!("varchar({})", text.chars().count()))))
                }
                // JSON values are text here, but Trino's type is `json`.
                [e] if is_json_valued(e) => Some(Expr::value(Value::SingleQuotedString("json".into()))),
                _ => None,
            },
            "try" => match a.as_slice() {
                [e] => {
                    let mut e = e.clone();
                    let _ = e.visit(&mut Tryer);
                    Some(Expr::Nested(Box::new(e)))
                }
                _ => return Err("try takes one argument".into()),
            },
            "contains" => {
                rename(f, "array_has");
                None
            }
            "transform" => {
                rename(f, "array_transform");
                None
            }
            "filter" if f.over.is_none() => {
                rename(f, "array_filter");
                None
            }
            "any_match" => {
                rename(f, "array_any_match");
                None
            }
            // DataFusion's any_match is three-valued as Trino's is (NULL when
            // no element matches and some predicate is NULL), so the other
            // two follow from it: none = NOT any(p), all = NOT any(NOT p).
            "none_match" => match a.as_slice() {
                [arr, l @ Expr::Lambda(_)] => Some(not(call("array_any_match", vec![arr.clone(), l.clone()]))),
                _ => return Err("none_match takes an array and a lambda".into()),
            },
            "all_match" => match a.as_slice() {
                [arr, Expr::Lambda(l)] => {
                    let mut negated = l.clone();
                    negated.body = Box::new(not(Expr::Nested(l.body.clone())));
                    Some(not(call("array_any_match", vec![arr.clone(), Expr::Lambda(negated)])))
                }
                _ => return Err("all_match takes an array and a lambda".into()),
            },
            "rand" if a.is_empty() => {
                rename(f, "random");
                None
            }
            "ceiling" => {
                rename(f, "ceil");
                None
            }
            "is_nan" => {
                rename(f, "isnan");
                None
            }
            "euclidean_distance" => {
                rename(f, "array_distance");
                None
            }
            // Trino's sign keeps the argument's type (see `calls`).
            "sign" => {
                rename(f, "signum");
                None
            }
            // Double-only here: the decimal form is refused in `calls`.
            "truncate" => {
                rename(f, "trunc");
                None
            }
            "e" if a.is_empty() => Some(call("exp", vec![double(1.0)])),
            "infinity" if a.is_empty() => Some(double_text("Infinity")),
            "nan" if a.is_empty() => Some(double_text("NaN")),
            "is_infinite" => match a.as_slice() {
                [x] => Some(binary(call("abs", vec![x.clone()]), sqlparser::ast::BinaryOperator::Eq, double_text("Infinity"))),
                _ => return Err("is_infinite takes one argument".into()),
            },
            "is_finite" => match a.as_slice() {
                [x] => Some(binary(
                    not(call("isnan", vec![x.clone()])),
                    sqlparser::ast::BinaryOperator::And,
                    binary(call("abs", vec![x.clone()]), sqlparser::ast::BinaryOperator::NotEq, double_text("Infinity")),
                )),
                _ => return Err("is_finite takes one argument".into()),
            },
            "mod" => match a.as_slice() {
                [n, m] => Some(binary(n.clone(), sqlparser::ast::BinaryOperator::Modulo, m.clone())),
                _ => return Err("mod takes two arguments".into()),
            },
            // random(n): an integer in [0, n).
            "random" | "rand" if a.len() == 1 => {
                let scaled = binary(call("random", vec![]), sqlparser::ast::BinaryOperator::Multiply, a[0].clone());
                Some(Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(call("floor", vec![scaled])),
                    data_type: SqlType::BigInt(None),
                    format: None,
                    array: false,
                })
            }
            "replace" if a.len() == 2 => {
                let mut a = a.clone();
                a.push(Expr::value(Value::SingleQuotedString(String::new())));
                Some(call("replace", a))
            }
            // Trino: the first element, NULL for an empty array.
            "array_first" if a.len() == 1 => Some(call("array_element", vec![a[0].clone(), Expr::value(Value::Number("1".into(), false))])),
            // The last element (`array_element` counts negative indices from the end).
            "array_last" if a.len() == 1 => Some(call("array_element", vec![a[0].clone(), Expr::value(Value::Number("-1".into(), false))])),
            "array_sort" if a.len() == 2 => return Err("NOT_SUPPORTED: array_sort with a comparator is not supported".into()),
            "current_timezone" if a.is_empty() => Some(Expr::value(Value::SingleQuotedString("UTC".into()))),
            "at_timezone" => match a.as_slice() {
                [t, z] => Some(call("__at_timezone", vec![t.clone(), z.clone()])),
                _ => return Err("at_timezone takes a timestamp and a zone".into()),
            },
            // The zone must be a constant: it is the result's type.
            "with_timezone" => match a.as_slice() {
                [t, Expr::Value(v)] if matches!(&v.value, Value::SingleQuotedString(_)) => {
                    let Value::SingleQuotedString(zone) = &v.value else { unreachable!("matched a string") };
                    types::zone(zone).map_err(|e| e.to_string())?;
                    let naive = Expr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(t.clone()),
                        data_type: SqlType::Timestamp(Some(3), sqlparser::ast::TimezoneInfo::None),
                        format: None,
                        array: false,
                    };
                    Some(zoned_cast(naive, "ms", zone))
                }
                _ => return Err("NOT_SUPPORTED: with_timezone takes a constant zone".into()),
            },
            "from_unixtime" if a.len() == 2 => Some(call("__at_timezone", vec![call("from_unixtime", vec![a[0].clone()]), a[1].clone()])),
            // An offset of hours and minutes, constants (it is the result's type).
            "from_unixtime" if a.len() == 3 => {
                let int = |e: &Expr| -> Option<i64> {
                    match e {
                        Expr::Value(v) => match &v.value {
                            Value::Number(n, _) => n.parse().ok(),
                            _ => None,
                        },
                        Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Minus, expr } => match expr.as_ref() {
                            Expr::Value(v) => match &v.value {
                                Value::Number(n, _) => n.parse::<i64>().ok().map(|n| -n),
                                _ => None,
                            },
                            _ => None,
                        },
                        _ => None,
                    }
                };
                let (Some(h), Some(m)) = (int(&a[1]), int(&a[2])) else {
                    return Err("from_unixtime(x, hours, minutes) needs constant hours and minutes".into());
                };
                let total = h * 60 + m;
                if total.abs() > 14 * 60 {
                    return Err(format!("INVALID_FUNCTION_ARGUMENT: Invalid offset minutes {total}"));
                }
                let zone = format!("{}{:02}:{:02}", if total < 0 { '-' } else { '+' }, total.abs() / 60, total.abs() % 60);
                Some(call("__at_timezone", vec![call("from_unixtime", vec![a[0].clone()]), Expr::value(Value::SingleQuotedString(zone))]))
            }
            // listagg(x, sep) WITHIN GROUP (ORDER BY …): string_agg with the order.
            "listagg" => {
                let mut a = a.clone();
                if a.len() == 1 {
                    a.push(Expr::value(Value::SingleQuotedString(String::new())));
                }
                let mut e = call("string_agg", a);
                if let Expr::Function(g) = &mut e {
                    if let FunctionArguments::List(l) = &mut g.args
                        && !f.within_group.is_empty()
                    {
                        l.clauses.push(sqlparser::ast::FunctionArgumentClause::OrderBy(std::mem::take(&mut f.within_group)));
                    }
                    g.filter = f.filter.take();
                }
                Some(e)
            }
            // timestamp(3) with time zone, in the session zone.
            "now" | "current_timestamp" if a.is_empty() => Some(call("__zoned", vec![Expr::Function(f.clone())])),
            // The session's wall clock (UTC) without a zone: timestamp(3) and time(3).
            "localtimestamp" | "localtime" if a.is_empty() => {
                let data_type = if name == "localtime" {
                    SqlType::Time(None, sqlparser::ast::TimezoneInfo::None)
                } else {
                    SqlType::Timestamp(Some(3), sqlparser::ast::TimezoneInfo::None)
                };
                Some(Expr::Cast { kind: CastKind::Cast, expr: Box::new(call("now", vec![])), data_type, format: None, array: false })
            }
            "array_join" => {
                rename(f, "array_to_string");
                None
            }
            // Trino functions whose semantics are not built yet: refused by
            // name rather than answered by a look-alike.
            name if UNSUPPORTED.contains(&name) => {
                return Err(format!("NOT_SUPPORTED: function {name} is not supported"));
            }
            _ => None,
        })
    }
}

impl VisitorMut for Rewriter {
    type Break = String;

    /// `-9223372036854775808` is bigint's least value in Trino: one
    /// negative literal, not the negation of a literal beyond bigint.
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<String> {
        if let Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Minus, expr: inner } = expr
            && let Expr::Value(v) = inner.as_ref()
            && let Value::Number(text, long) = &v.value
            && text == "9223372036854775808"
        {
            *expr = Expr::value(Value::Number(format!("-{text}"), *long));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<String> {
        // `(expr).field`: a row's field by name (DataFusion takes the name as a string).
        if let Expr::CompoundFieldAccess { access_chain, .. } = expr {
            for access in access_chain.iter_mut() {
                if let sqlparser::ast::AccessExpr::Dot(Expr::Identifier(field)) = access {
                    let name = if field.quote_style.is_some() { field.value.clone() } else { field.value.to_lowercase() };
                    *access = sqlparser::ast::AccessExpr::Dot(Expr::value(Value::SingleQuotedString(name)));
                }
            }
        }
        // `s.field` of a lambda's row parameter `s`: a field access, not a column.
        if let Expr::Lambda(l) = expr {
            let params: Vec<String> = l.params.iter().map(|p| p.name.value.to_lowercase()).collect();
            let _ = l.body.visit(&mut LambdaFields { params });
        }
        let replacement = match expr {
            Expr::Function(f) => match self.function(f) {
                Ok(r) => r,
                Err(e) => return ControlFlow::Break(e),
            },
            // `x[i]`: Trino's subscript, which fails outside the array or for
            // a key not in the map (DataFusion's answers NULL), and takes a
            // key or index computed per row.
            Expr::CompoundFieldAccess { root, access_chain } if access_chain.iter().any(is_index) => {
                use sqlparser::ast::{AccessExpr, Subscript};
                let mut e = (**root).clone();
                let mut pending: Vec<AccessExpr> = vec![];
                let flush = |e: Expr, pending: &mut Vec<AccessExpr>| {
                    if pending.is_empty() {
                        e
                    } else {
                        Expr::CompoundFieldAccess { root: Box::new(e), access_chain: std::mem::take(pending) }
                    }
                };
                for access in access_chain.iter() {
                    match access {
                        AccessExpr::Subscript(Subscript::Index { index }) => {
                            e = call("__subscript", vec![flush(e, &mut pending), index.clone()]);
                        }
                        other => pending.push(other.clone()),
                    }
                }
                Some(flush(e, &mut pending))
            }
            // SUBSTR/SUBSTRING syntax is planned by DataFusion's own planner;
            // a plain call reaches the registry, where Trino's `substr` is.
            Expr::Substring { expr: inner, substring_from, substring_for, .. } => {
                let mut a = vec![(**inner).clone()];
                a.push(substring_from.as_deref().cloned().unwrap_or_else(|| Expr::value(Value::Number("1".into(), false))));
                if let Some(f) = substring_for {
                    a.push((**f).clone());
                }
                Some(call("substr", a))
            }
            // A timestamp literal's precision is its number of fraction digits.
            Expr::TypedString(ts) if matches!(ts.data_type, SqlType::Timestamp(None, _)) => {
                let mut text = ts.value.clone().into_string().unwrap_or_default();
                // Trino reads `2012-08-08 01:00` (no seconds) as 01:00:00.
                if let Some(full) = with_seconds(&text) {
                    text = full;
                    ts.value = Value::SingleQuotedString(text.clone()).into();
                }
                let digits = text.split_once('.').map(|(_, f)| f.chars().take_while(char::is_ascii_digit).count()).unwrap_or(0);
                let p = match digits {
                    0 => 0,
                    1..=3 => 3,
                    4..=6 => 6,
                    _ => 9,
                };
                if let SqlType::Timestamp(_, tz) = &ts.data_type {
                    ts.data_type = SqlType::Timestamp(Some(p), *tz);
                }
                // `… America/New_York`, `… UTC`, `…+01:00`: a wall-clock time in
                // that zone, typed timestamp(p) with time zone (DataFusion
                // would parse it to a UTC instant and drop the zone).
                match split_zone(&text) {
                    None => None,
                    Some((wall, zone)) => {
                        if let Err(e) = types::zone(&zone) {
                            return ControlFlow::Break(format!("INVALID_LITERAL: {e}"));
                        }
                        ts.value = Value::SingleQuotedString(wall).into();
                        let unit = ["s", "ms", "us", "ns"][(p / 3) as usize];
                        Some(zoned_cast(Expr::TypedString(ts.clone()), unit, &zone))
                    }
                }
            }
            // `DECIMAL '3.14'` is the decimal literal 3.14, decimal(3,2).
            Expr::TypedString(ts) if matches!(ts.data_type, SqlType::Decimal(sqlparser::ast::ExactNumberInfo::None)) => {
                let text = ts.value.clone().into_string().unwrap_or_default().trim().to_owned();
                let digits = text.strip_prefix(['-', '+']).unwrap_or(&text);
                if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') || digits.matches('.').count() > 1 {
                    return ControlFlow::Break(format!("INVALID_LITERAL: '{text}' is not a valid decimal literal"));
                }
                if let Err(e) = check_number(digits) {
                    return ControlFlow::Break(e);
                }
                let number = Expr::value(Value::Number(digits.to_owned(), false));
                Some(if text.starts_with('-') {
                    Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Minus, expr: Box::new(number) }
                } else {
                    number
                })
            }
            // A special form (no parentheses), refused like a function.
            Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("current_user") => {
                return ControlFlow::Break("NOT_SUPPORTED: function current_user is not supported".into());
            }
            Expr::AtTimeZone { timestamp, time_zone } => Some(call("__at_timezone", vec![(**timestamp).clone(), (**time_zone).clone()])),
            Expr::Extract { field, expr: inner, .. } => {
                let f = match field {
                    DateTimeField::Dow | DateTimeField::DayOfWeek => Some("day_of_week"),
                    DateTimeField::Doy | DateTimeField::DayOfYear => Some("day_of_year"),
                    DateTimeField::Week(_) => Some("week"),
                    DateTimeField::Year => Some("year"),
                    DateTimeField::Month => Some("month"),
                    DateTimeField::Day => Some("day"),
                    DateTimeField::Hour => Some("hour"),
                    DateTimeField::Minute => Some("minute"),
                    DateTimeField::Second => Some("second"),
                    DateTimeField::Quarter => Some("quarter"),
                    _ => None,
                };
                f.map(|f| call(f, vec![(**inner).clone()]))
            }
            // JSON is text here: a JSON literal is its text, parsed (so checked).
            Expr::TypedString(ts) if matches!(ts.data_type, SqlType::JSON) => Some(call("json_parse", vec![Expr::Value(ts.value.clone())])),
            Expr::Cast { kind, expr: inner, data_type, .. }
                if matches!(kind, CastKind::Cast | CastKind::DoubleColon | CastKind::TryCast) && matches!(data_type, SqlType::JSON) =>
            {
                // A value as JSON (a varchar becomes a JSON string); JSON stays as it is.
                if is_json_valued(inner) { Some((**inner).clone()) } else { Some(call("__to_json", vec![(**inner).clone()])) }
            }
            Expr::Cast { kind, expr: inner, data_type, .. }
                if matches!(kind, CastKind::Cast | CastKind::DoubleColon | CastKind::TryCast)
                    && is_json_valued(inner)
                    && (is_varchar_type(data_type) || is_integer_type(data_type) || is_json_scalar_target(data_type)) =>
            {
                // JSON to a scalar: a JSON string's text (not its quoted form),
                // a number or boolean converted, JSON null as NULL.
                let typed_null = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(Expr::value(Value::Null)),
                    data_type: data_type.clone(),
                    format: None,
                    array: false,
                };
                let name = if matches!(kind, CastKind::TryCast) { "__try_json_to" } else { "__json_to" };
                Some(call(name, vec![(**inner).clone(), typed_null]))
            }
            // MAP(K, V), ROW(…) and arrays of them or of JSON (`casts`).
            Expr::Cast { kind, expr: inner, data_type, .. }
                if matches!(kind, CastKind::Cast | CastKind::DoubleColon | CastKind::TryCast) && is_structured_type(data_type) =>
            {
                let shape = match shape_of(data_type) {
                    Ok(s) => s,
                    Err(e) => return ControlFlow::Break(e),
                };
                let name = if matches!(kind, CastKind::TryCast) { "__try_cast_to" } else { "__cast_to" };
                Some(call(name, vec![(**inner).clone(), Expr::value(Value::SingleQuotedString(shape.name()))]))
            }
            Expr::Cast { kind, expr: inner, data_type, .. }
                if matches!(kind, CastKind::Cast | CastKind::DoubleColon | CastKind::TryCast) =>
            {
                // Trino's `timestamp` is timestamp(3); `timestamp with time
                // zone` keeps a zoned value's zone and reads others in UTC.
                if let SqlType::Timestamp(_, sqlparser::ast::TimezoneInfo::WithTimeZone) = data_type {
                    *expr = call("__zoned", vec![(**inner).clone()]);
                    return ControlFlow::Continue(());
                }
                if let SqlType::Timestamp(p @ None, _) = data_type {
                    *p = Some(3);
                }
                if let SqlType::Array(sqlparser::ast::ArrayElemTypeDef::AngleBracket(elem)) = data_type {
                    // From JSON text or another array; the typed NULL carries the target.
                    let (name, target) = match elem.as_ref() {
                        SqlType::JSON => (
                            "__cast_json_array",
                            SqlType::Array(sqlparser::ast::ArrayElemTypeDef::AngleBracket(Box::new(SqlType::Varchar(None)))),
                        ),
                        _ => ("__cast_array", data_type.clone()),
                    };
                    let typed_null = Expr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(Expr::value(Value::Null)),
                        data_type: target,
                        format: None,
                        array: false,
                    };
                    Some(call(name, vec![(**inner).clone(), typed_null]))
                } else if is_integer_type(data_type) {
                    **inner = call("__round_for_int", vec![(**inner).clone()]);
                    None
                } else if is_varchar_type(data_type) && !matches!(kind, CastKind::TryCast) {
                    Some(call("__to_varchar", vec![(**inner).clone()]))
                } else {
                    None
                }
            }
            Expr::Value(v) if matches!(&v.value, Value::Number(..)) => {
                let Value::Number(text, _) = &v.value else { unreachable!("matched a number") };
                if let Err(e) = check_number(text) {
                    return ControlFlow::Break(e);
                }
                // Decimal literals are decimals (the session parses them so);
                // those with an exponent are doubles, as in Trino.
                text.contains(['e', 'E']).then(|| Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(expr.clone()),
                    data_type: SqlType::Double(sqlparser::ast::ExactNumberInfo::None),
                    array: false,
                    format: None,
                })
            }
            Expr::Value(v) if matches!(&v.value, Value::Placeholder(p) if p == "?") => {
                self.params += 1;
                if self.unbound {
                    Some(Expr::value(Value::Placeholder(format!("${}", self.params))))
                } else {
                    self.values.get(self.params - 1).cloned()
                }
            }
            Expr::Value(v) if matches!(&v.value, Value::Placeholder(p) if placeholder_number(p).is_some()) => {
                let Value::Placeholder(p) = &v.value else { unreachable!("matched a placeholder") };
                let n = placeholder_number(p).unwrap_or_default();
                self.numbered = self.numbered.max(n);
                self.values.get(n - 1).cloned()
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *expr = r;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<String> {
        name_columns(q.body.as_mut());
        if let sqlparser::ast::SetExpr::Select(select) = q.body.as_mut() {
            let mut renames = Vec::new();
            if let Err(e) = lateral_unnest(select, &mut renames) {
                return ControlFlow::Break(e);
            }
            if !renames.is_empty() {
                let _ = q.visit(&mut Requalify::new(renames));
            }
        }
        if let Some(fetch) = q.fetch.take() {
            if fetch.percent || fetch.with_ties {
                return ControlFlow::Break("FETCH … PERCENT / WITH TIES is not supported".into());
            }
            let limit = fetch.quantity.unwrap_or_else(|| Expr::value(Value::Number("1".into(), false)));
            let offset = match q.limit_clause.take() {
                Some(LimitClause::LimitOffset { offset, .. }) => offset,
                _ => None,
            };
            q.limit_clause = Some(LimitClause::LimitOffset { limit: Some(limit), offset, limit_by: vec![] });
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<String> {
        // `FROM UNNEST(m) AS t(k, v)`: a map's entries, or an array of rows'
        // fields, as columns.
        if let TableFactor::UNNEST { alias: Some(a), array_exprs, with_ordinality, with_offset: false, .. } = t
            && array_exprs.len() == 1
            && a.columns.len() > 1 + usize::from(*with_ordinality)
        {
            let (mut inner, mut outer) = unnest_rows(&array_exprs[0], &a.columns, *with_ordinality, None);
            if let sqlparser::ast::SetExpr::Select(s) = inner.body.as_mut() {
                s.from.clear();
            }
            let rows =
                TableFactor::Derived { lateral: false, subquery: Box::new(inner), alias: Some(table_alias("_unnest")), sample: None };
            if let sqlparser::ast::SetExpr::Select(s) = outer.body.as_mut() {
                s.from[0].relation = rows;
            }
            let name = table_alias(&a.name.value);
            *t = TableFactor::Derived { lateral: false, subquery: Box::new(outer), alias: Some(name), sample: None };
            return ControlFlow::Continue(());
        }
        // `FROM UNNEST(a) WITH ORDINALITY AS t(x, n)`: zip with 1..cardinality(a).
        if let TableFactor::UNNEST { array_exprs, with_ordinality, .. } = t
            && *with_ordinality
            && let Some(first) = array_exprs.first()
        {
            let ordinals =
                call("generate_series", vec![Expr::value(Value::Number("1".into(), false)), call("cardinality", vec![first.clone()])]);
            array_exprs.push(ordinals);
            *with_ordinality = false;
        }
        if let TableFactor::Table { name, alias, sample, args, with_hints, version, partitions, .. } = t
            && let Some(kind) = sample.take()
        {
            let s = match kind {
                sqlparser::ast::TableSampleKind::BeforeTableAlias(s) | sqlparser::ast::TableSampleKind::AfterTableAlias(s) => s,
            };
            let Some(q) = s.quantity.as_ref() else {
                return ControlFlow::Break("TABLESAMPLE needs a percentage".into());
            };
            // `SELECT * FROM t WHERE random() * 100 < (pct)`, as a tree.
            let hundred = Expr::value(Value::Number("100".into(), false));
            let keep = Expr::BinaryOp {
                left: Box::new(Expr::BinaryOp {
                    left: Box::new(call("random", vec![])),
                    op: sqlparser::ast::BinaryOperator::Multiply,
                    right: Box::new(hundred),
                }),
                op: sqlparser::ast::BinaryOperator::Lt,
                right: Box::new(Expr::Nested(Box::new(q.value.clone()))),
            };
            let table = TableFactor::Table {
                name: name.clone(),
                alias: None,
                args: args.take(),
                with_hints: std::mem::take(with_hints),
                version: version.take(),
                with_ordinality: false,
                partitions: std::mem::take(partitions),
                json_path: None,
                sample: None,
                index_hints: vec![],
            };
            let star = sqlparser::ast::SelectItem::Wildcard(Default::default());
            let sub = select_from(vec![star], table, Some(keep));
            let alias = alias.take().or_else(|| {
                name.0.last().and_then(|p| p.as_ident().cloned()).map(|i| sqlparser::ast::TableAlias {
                    name: i,
                    columns: vec![],
                    explicit: true,
                    at: None,
                })
            });
            *t = TableFactor::Derived { lateral: false, subquery: Box::new(sub), alias, sample: None };
        }
        ControlFlow::Continue(())
    }
}

/// Trino names a select item that is neither a column nor a field `_colN`,
/// N its position: `SELECT a, count(*)` has columns `a` and `_col1`. The
/// alias goes on the item, so clients see Trino's names rather than the
/// expression's text. Every select of a set operation is named alike.
fn name_columns(body: &mut sqlparser::ast::SetExpr) {
    use sqlparser::ast::{SelectItem, SetExpr};
    match body {
        SetExpr::Select(select) => {
            for (i, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(e) = item
                    && !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                {
                    let expr = std::mem::replace(e, Expr::value(Value::Null));
                    *item = SelectItem::ExprWithAlias { expr, alias: sqlparser::ast::Ident::new(format!("_col{i}")) };
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            // Iteratively down the left spine: long UNION chains are lists.
            name_columns(right);
            let mut next = left.as_mut();
            loop {
                match next {
                    SetExpr::SetOperation { left, right, .. } => {
                        name_columns(right);
                        next = left.as_mut();
                    }
                    other => {
                        name_columns(other);
                        break;
                    }
                }
            }
        }
        _ => {}
    }
}

/// Trino's lateral unnest, `FROM t CROSS JOIN UNNEST(t.a, …) [WITH ORDINALITY]
/// AS u(x, …[, n])` (or `FROM t, UNNEST(…)`), which DataFusion cannot plan
/// (outer references), becomes DataFusion's select-list unnest:
/// `FROM (SELECT t.*, unnest(t.a) AS x, … FROM t) AS t`, and `u.x` becomes
/// `t.x`. Several arrays are zipped, as in Trino; rows whose arrays are empty
/// or NULL produce nothing, as in Trino's CROSS JOIN.
fn lateral_unnest(select: &mut sqlparser::ast::Select, renames: &mut Vec<(String, String)>) -> Result<(), String> {
    use sqlparser::ast::{Join, JoinOperator, TableAlias, TableWithJoins};
    // The comma form: `FROM t, UNNEST(…)` is a cross join.
    if select.from.len() == 2
        && select.from[0].joins.is_empty()
        && matches!(select.from[1].relation, TableFactor::UNNEST { .. })
        && select.from[1].joins.is_empty()
    {
        let unnest = select.from.remove(1).relation;
        select.from[0].joins.push(Join {
            relation: unnest,
            global: false,
            join_operator: JoinOperator::CrossJoin(sqlparser::ast::JoinConstraint::None),
        });
    }
    for twj in select.from.iter_mut() {
        let TableWithJoins { relation, joins } = twj;
        let Some(Join {
            relation: TableFactor::UNNEST { alias: Some(ualias), array_exprs, with_offset: false, with_ordinality, .. },
            join_operator,
            ..
        }) = joins.first()
        else {
            continue;
        };
        if !matches!(join_operator, JoinOperator::CrossJoin(_)) {
            continue;
        }
        let left = match relation {
            TableFactor::Table { name, alias, .. } => {
                alias.as_ref().map(|a| a.name.clone()).or_else(|| name.0.last().and_then(|p| p.as_ident().cloned()))
            }
            // An unnamed subquery gets a name, so the rewrite can refer to it.
            TableFactor::Derived { alias, .. } => Some(
                alias
                    .get_or_insert_with(|| TableAlias {
                        explicit: true,
                        name: sqlparser::ast::Ident::new(format!("_unnest_source{}", renames.len())),
                        columns: vec![],
                        at: None,
                    })
                    .name
                    .clone(),
            ),
            _ => None,
        };
        let Some(left) = left else { continue };
        let want = array_exprs.len() + usize::from(*with_ordinality);
        if array_exprs.len() == 1 && ualias.columns.len() > want {
            // A map's entries, or an array of rows' fields, as columns.
            let (inner, outer) = unnest_rows(&array_exprs[0], &ualias.columns, *with_ordinality, Some((&left, relation.clone())));
            let rows =
                TableFactor::Derived { lateral: false, subquery: Box::new(inner), alias: Some(table_alias("_unnest")), sample: None };
            let mut outer = outer;
            if let sqlparser::ast::SetExpr::Select(s) = outer.body.as_mut() {
                s.from[0].relation = rows;
            }
            renames.push((ualias.name.value.to_lowercase(), left.value.clone()));
            *relation = TableFactor::Derived {
                lateral: false,
                subquery: Box::new(outer),
                alias: Some(TableAlias { explicit: true, name: left, columns: vec![], at: None }),
                sample: None,
            };
            joins.remove(0);
            continue;
        }
        if ualias.columns.len() != want {
            return Err(format!(
                "UNNEST AS {}(…) needs {want} column name(s): one per array{}",
                ualias.name,
                if *with_ordinality { " and one for WITH ORDINALITY" } else { "" }
            ));
        }
        // `SELECT left.*, unnest(a) AS x, … [, unnest(generate_series(1, n)) AS o] FROM relation`.
        let mut items = vec![sqlparser::ast::SelectItem::QualifiedWildcard(
            sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(sqlparser::ast::ObjectName::from(vec![left.clone()])),
            Default::default(),
        )];
        for (e, c) in array_exprs.iter().zip(&ualias.columns) {
            items.push(sqlparser::ast::SelectItem::ExprWithAlias { expr: call("unnest", vec![e.clone()]), alias: c.name.clone() });
        }
        if *with_ordinality {
            let mut lengths: Vec<Expr> = array_exprs.iter().map(|e| call("cardinality", vec![e.clone()])).collect();
            let longest = if lengths.len() == 1 { lengths.remove(0) } else { call("greatest", lengths) };
            let ordinals = call("generate_series", vec![Expr::value(Value::Number("1".into(), false)), longest]);
            items.push(sqlparser::ast::SelectItem::ExprWithAlias {
                expr: call("unnest", vec![ordinals]),
                alias: ualias.columns[want - 1].name.clone(),
            });
        }
        let sub = select_from(items, relation.clone(), None);
        renames.push((ualias.name.value.to_lowercase(), left.value.clone()));
        *relation = TableFactor::Derived {
            lateral: false,
            subquery: Box::new(sub),
            alias: Some(TableAlias { explicit: true, name: left, columns: vec![], at: None }),
            sample: None,
        };
        joins.remove(0);
    }
    Ok(())
}

fn table_alias(name: &str) -> sqlparser::ast::TableAlias {
    sqlparser::ast::TableAlias { explicit: true, name: sqlparser::ast::Ident::new(name), columns: vec![], at: None }
}

/// `UNNEST(e) AS u(c1, c2, …[, n])` where `e` gives several columns (a
/// map's key and value, an array of rows' fields): an inner query
/// unnesting `e`'s rows into `_u` (beside `left.*` in the lateral form, and
/// the ordinal), and an outer one splitting `_u` into the named columns
/// (its FROM, a placeholder, is set to the inner query by the caller).
fn unnest_rows(
    e: &Expr,
    columns: &[sqlparser::ast::TableAliasColumnDef],
    with_ordinality: bool,
    lateral: Option<(&sqlparser::ast::Ident, TableFactor)>,
) -> (Query, Query) {
    use sqlparser::ast::{ExcludeSelectItem, Ident, ObjectName, SelectItem, SelectItemQualifiedWildcardKind, WildcardAdditionalOptions};
    let rows = Ident::new("_u");
    let n = columns.len() - usize::from(with_ordinality);
    let mut inner = vec![];
    let mut outer = vec![];
    if let Some((left, _)) = lateral {
        inner.push(SelectItem::QualifiedWildcard(
            SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(vec![left.clone()])),
            Default::default(),
        ));
        // The left side's columns: all but `_u` and the ordinal.
        let mut hidden = vec![ObjectName::from(vec![rows.clone()])];
        if with_ordinality {
            hidden.push(ObjectName::from(vec![columns[n].name.clone()]));
        }
        let options = WildcardAdditionalOptions { opt_exclude: Some(ExcludeSelectItem::Multiple(hidden)), ..Default::default() };
        outer.push(SelectItem::Wildcard(options));
    }
    inner.push(SelectItem::ExprWithAlias { expr: call("unnest", vec![call("__unnest_rows", vec![e.clone()])]), alias: rows.clone() });
    for (i, c) in columns[..n].iter().enumerate() {
        let position = Expr::value(Value::Number((i + 1).to_string(), false));
        outer.push(SelectItem::ExprWithAlias {
            expr: call("__field", vec![Expr::Identifier(rows.clone()), position]),
            alias: c.name.clone(),
        });
    }
    if with_ordinality {
        let ordinals = call("generate_series", vec![Expr::value(Value::Number("1".into(), false)), call("cardinality", vec![e.clone()])]);
        inner.push(SelectItem::ExprWithAlias { expr: call("unnest", vec![ordinals]), alias: columns[n].name.clone() });
        outer.push(SelectItem::UnnamedExpr(Expr::Identifier(columns[n].name.clone())));
    }
    let from = match lateral {
        Some((_, relation)) => relation,
        None => TableFactor::Table {
            name: ObjectName::from(vec![rows.clone()]),
            alias: None,
            args: None,
            with_hints: vec![],
            version: None,
            with_ordinality: false,
            partitions: vec![],
            json_path: None,
            sample: None,
            index_hints: vec![],
        },
    };
    let placeholder = TableFactor::Table {
        name: ObjectName::from(vec![rows]),
        alias: None,
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    };
    (select_from(inner, from, None), select_from(outer, placeholder, None))
}

/// `SELECT projection FROM from [WHERE selection]`, built as a tree (the
/// rewrites never print SQL to parse it again).
fn select_from(projection: Vec<sqlparser::ast::SelectItem>, from: TableFactor, selection: Option<Expr>) -> Query {
    use sqlparser::ast::{GroupByExpr, Select, SelectFlavor, SetExpr, TableWithJoins, helpers::attached_token::AttachedToken};
    let select = Select {
        select_token: AttachedToken::empty(),
        optimizer_hints: vec![],
        distinct: None,
        select_modifiers: None,
        top: None,
        top_before_distinct: false,
        projection,
        exclude: None,
        into: None,
        from: vec![TableWithJoins { relation: from, joins: vec![] }],
        lateral_views: vec![],
        prewhere: None,
        selection,
        connect_by: vec![],
        group_by: GroupByExpr::Expressions(vec![], vec![]),
        cluster_by: vec![],
        distribute_by: vec![],
        sort_by: vec![],
        having: None,
        named_window: vec![],
        qualify: None,
        window_before_qualify: false,
        value_table_mode: None,
        flavor: SelectFlavor::Standard,
    };
    Query {
        with: None,
        body: Box::new(SetExpr::Select(Box::new(select))),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: vec![],
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: vec![],
    }
}

/// Points `u.x` at the relation that now holds the unnested columns, in the
/// rewritten query and in subqueries that do not bind `u` themselves.
struct Requalify {
    renames: Vec<(String, String)>,
    /// Per query being visited: the aliases its own FROM binds (the first
    /// entry is the rewritten query, whose FROM no longer binds them).
    scopes: Vec<Vec<String>>,
}

impl Requalify {
    fn new(renames: Vec<(String, String)>) -> Self {
        Self { renames, scopes: Vec::new() }
    }

    fn shadowed(&self, alias: &str) -> bool {
        self.scopes.iter().skip(1).any(|s| s.iter().any(|a| a.eq_ignore_ascii_case(alias)))
    }
}

/// The names a query's FROM clause binds (aliases, or bare table names).
fn bound_names(q: &Query) -> Vec<String> {
    let sqlparser::ast::SetExpr::Select(select) = q.body.as_ref() else { return Vec::new() };
    let factor_name = |t: &TableFactor| -> Option<String> {
        match t {
            TableFactor::Table { alias: Some(a), .. }
            | TableFactor::Derived { alias: Some(a), .. }
            | TableFactor::UNNEST { alias: Some(a), .. }
            | TableFactor::Function { alias: Some(a), .. } => Some(a.name.value.clone()),
            TableFactor::Table { name, alias: None, .. } => name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()),
            _ => None,
        }
    };
    select
        .from
        .iter()
        .flat_map(|twj| std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)))
        .filter_map(factor_name)
        .collect()
}

impl VisitorMut for Requalify {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        self.scopes.push(bound_names(q));
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.scopes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(parts) = expr
            && parts.len() == 2
            && let Some((from, to)) = self.renames.iter().find(|(from, _)| parts[0].value.eq_ignore_ascii_case(from))
            && !self.shadowed(from)
        {
            parts[0] = sqlparser::ast::Ident::new(to.clone());
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(sql: &str) -> String {
        let mut s = parse(sql).unwrap().remove(0);
        let params: Vec<String> = if sql.contains('?') { vec!["'x'".into(), "DATE '2026-11-02'".into()] } else { vec![] };
        rewrite(&mut s, parse_params(&params).unwrap()).unwrap();
        s.to_string()
    }

    #[test]
    fn rewrites() {
        assert_eq!(rw(r#"SELECT "UserId" FROM "Events""#), r#"SELECT "userid" FROM "events""#);
        assert_eq!(rw("SELECT CAST(x AS INTEGER) FROM t"), "SELECT CAST(__round_for_int(x) AS INTEGER) AS _col0 FROM t");
        assert_eq!(rw("SELECT count_if(a > 1) FROM t"), "SELECT count(CASE WHEN a > 1 THEN 1 END) AS _col0 FROM t");
        assert_eq!(rw("SELECT ts AT TIME ZONE 'UTC' FROM t"), "SELECT __at_timezone(ts, 'UTC') AS _col0 FROM t");
        assert_eq!(rw("SELECT * FROM t FETCH FIRST 5 ROWS ONLY"), "SELECT * FROM t LIMIT 5");
        assert_eq!(rw("SELECT a FROM t WHERE b = ? AND c = ?"), "SELECT a FROM t WHERE b = 'x' AND c = DATE '2026-11-02'");
        assert_eq!(rw("SELECT try(1 / x) FROM t"), "SELECT (1 / nullif(x, 0)) AS _col0 FROM t");
        assert_eq!(rw("SELECT max_by(a, b) FROM t"), "SELECT first_value(a ORDER BY b DESC NULLS LAST) AS _col0 FROM t");
        assert!(rw("SELECT * FROM t TABLESAMPLE BERNOULLI (10)").contains("random() * 100 < (10)"));
        assert_eq!(
            rw("SELECT a, t.b, 1, a + 1 AS c, 2 FROM t UNION SELECT 1, 2, 3, 4, 5"),
            "SELECT a, t.b, 1 AS _col2, a + 1 AS c, 2 AS _col4 FROM t UNION SELECT 1 AS _col0, 2 AS _col1, 3 AS _col2, 4 AS _col3, 5 AS _col4"
        );
        assert_eq!(rw("SELECT transform(a, x -> x + 1) FROM t"), "SELECT array_transform(a, x -> x + 1) AS _col0 FROM t");
    }

    #[test]
    fn numbered_placeholders() {
        let numbered = |sql: &str, values: &[&str]| {
            let mut s = parse(sql).unwrap().remove(0);
            let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
            rewrite(&mut s, parse_params(&values).unwrap()).map(|()| s.to_string())
        };
        let sql = "SELECT a FROM t WHERE b = $2 AND c > $1 AND d <> $2";
        assert_eq!(numbered(sql, &["5", "'x'"]).unwrap(), "SELECT a FROM t WHERE b = 'x' AND c > 5 AND d <> 'x'");
        // Described before binding: the placeholders stay for the planner.
        assert_eq!(numbered(sql, &[]).unwrap(), sql);
        assert!(numbered(sql, &["5"]).unwrap_err().to_string().contains("parameter $2 but 1 value"));
        assert!(numbered("SELECT $1, ?", &["1", "2"]).unwrap_err().to_string().contains("not both"));
        let mut s = parse("SELECT a FROM t WHERE b = ? AND c > ?").unwrap().remove(0);
        rewrite_unbound(&mut s).unwrap();
        assert_eq!(s.to_string(), "SELECT a FROM t WHERE b = $1 AND c > $2");
    }
}
