//! Names the unnamed scalar subqueries of a SELECT list by their SQL text
//! when the list has more than one, so DataFusion can plan it.
//!
//! Why: DataFusion names every scalar subquery `(<subquery>)`, whatever it
//! holds, and refuses a projection with two equal names ("Projections
//! require unique expression names ... Consider aliasing"), so
//! `SELECT (SELECT count(*) FROM t AS x WHERE x.b < t.b), (SELECT max(b)
//! FROM t) FROM t` failed to plan. SQL (PostgreSQL, SQLite) takes it, and
//! SQLite's sqllogictest corpus (`test_files/standard/sqlite/`) is full of
//! such lists.
//!
//! The pass works on the parsed statement, before DataFusion plans it: in a
//! SELECT list with two or more unnamed items that hold a subquery, each of
//! those items gets its own SQL text as its name (`... AS "(SELECT
//! count(*) FROM t AS x WHERE x.b < t.b)"`), with ` #2`, ` #3` ... after a
//! text that repeats. Lists with at most one such item keep DataFusion's
//! names.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, Query, SelectItem, SetExpr, Statement, VisitMut, VisitorMut, visit_expressions,
};

/// Names the subquery items of every SELECT list in `statement` that has
/// two or more (see the module header). Never fails.
pub fn name_scalar_subqueries(statement: &mut Statement) {
    let _ = statement.visit(&mut Namer);
}

struct Namer;

impl VisitorMut for Namer {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        name_in_set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}

fn name_in_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => name_in_list(&mut select.projection),
        SetExpr::SetOperation { left, right, .. } => {
            name_in_set_expr(left);
            name_in_set_expr(right);
        }
        _ => {}
    }
}

fn holds_subquery(expr: &Expr) -> bool {
    visit_expressions(expr, |e| {
        if matches!(e, Expr::Subquery(_)) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

fn name_in_list(items: &mut [SelectItem]) {
    let with_subquery = items
        .iter()
        .filter(|i| matches!(i, SelectItem::UnnamedExpr(e) if holds_subquery(e)))
        .count();
    if with_subquery < 2 {
        return;
    }
    let mut names: Vec<String> = vec![];
    for item in items.iter_mut() {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        if !holds_subquery(expr) {
            continue;
        }
        let text = expr.to_string();
        let mut name = text.clone();
        let mut n = 1;
        while names.contains(&name) {
            n += 1;
            name = format!("{text} #{n}");
        }
        names.push(name.clone());
        *item = SelectItem::ExprWithAlias {
            expr: expr.clone(),
            alias: Ident::with_quote('"', name),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn named(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&GenericDialect {}, sql).unwrap();
        name_scalar_subqueries(&mut statements[0]);
        statements[0].to_string()
    }

    #[test]
    fn two_subqueries_are_named_by_their_text() {
        assert_eq!(
            named("SELECT (SELECT 1), a, (SELECT max(b) FROM t) + 1 FROM t"),
            "SELECT (SELECT 1) AS \"(SELECT 1)\", a, (SELECT max(b) FROM t) + 1 AS \"(SELECT max(b) FROM t) + 1\" FROM t"
        );
    }

    #[test]
    fn a_repeated_text_gets_a_number() {
        assert_eq!(
            named("SELECT (SELECT 1), (SELECT 1) FROM t"),
            "SELECT (SELECT 1) AS \"(SELECT 1)\", (SELECT 1) AS \"(SELECT 1) #2\" FROM t"
        );
    }

    #[test]
    fn one_subquery_or_named_ones_are_left_alone() {
        let sql = "SELECT (SELECT 1), a FROM t";
        assert_eq!(named(sql), sql);
        let sql = "SELECT (SELECT 1) AS x, (SELECT 2) AS y FROM t";
        assert_eq!(named(sql), sql);
    }

    #[test]
    fn lists_inside_subqueries_and_unions_are_named_too() {
        let out = named(
            "SELECT * FROM (SELECT (SELECT 1), (SELECT 2)) UNION SELECT (SELECT 3), (SELECT 4)",
        );
        assert!(out.contains("AS \"(SELECT 2)\""), "{out}");
        assert!(out.contains("AS \"(SELECT 4)\""), "{out}");
    }
}
