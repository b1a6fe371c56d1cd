//! `Reading`, what the read API holds of one read connection: the reads of reader grants, the feed and the statements, and no SQL.
//!
//! The read API runs several reads per request on one connection (a grant check, then a
//! page, some in one snapshot); it gets them through this handle, so it never names the
//! engine and a second engine needs only a second handle.

use super::connection::in_snapshot;
use super::db::Db;
use super::feed::{self, FeedFilter, FeedPage, ToetsVersion};
use super::readers::{self, ReadableSchool};
use super::statements::{self, StatementFilter, StatementRow};
use super::StoreError;
use crate::domain::SchoolCode;

/// One read connection, seen through the store's read functions.
#[derive(Clone, Copy)]
pub(crate) struct Reading<'a> {
    connection: &'a Db<'a>,
}

impl<'a> Reading<'a> {
    /// The reads of a connection a store job got (`Store::read`).
    pub(crate) fn new(connection: &'a Db<'a>) -> Reading<'a> {
        Reading { connection }
    }

    /// Runs `job`'s reads in one snapshot, ended when the job returns.
    pub(crate) fn snapshot<R, E: From<StoreError>>(
        &self,
        job: impl FnOnce(&Reading) -> Result<R, E>,
    ) -> Result<R, E> {
        in_snapshot(self.connection, |snapshot| job(&Reading::new(snapshot)))
    }

    /// `readers::readable_school`.
    pub(crate) fn readable_school(
        &self,
        reader_id: i64,
        school: &SchoolCode,
        today: chrono::NaiveDate,
    ) -> Result<Option<i64>, StoreError> {
        readers::readable_school(self.connection, reader_id, school, today)
    }

    /// `readers::readable_schools`.
    pub(crate) fn readable_schools(
        &self,
        reader_id: i64,
        today: chrono::NaiveDate,
    ) -> Result<Vec<ReadableSchool>, StoreError> {
        readers::readable_schools(self.connection, reader_id, today)
    }

    /// `feed::read_feed`.
    pub(crate) fn feed(
        &self,
        school_id: i64,
        since: i64,
        limit: u32,
        filter: &FeedFilter,
    ) -> Result<FeedPage, StoreError> {
        feed::read_feed(self.connection, school_id, since, limit, filter)
    }

    /// `feed::read_toets_versions`.
    pub(crate) fn toets_versions(
        &self,
        school_id: i64,
        toetscode: &str,
    ) -> Result<Vec<ToetsVersion>, StoreError> {
        feed::read_toets_versions(self.connection, school_id, toetscode)
    }

    /// `statements::seq_of`.
    pub(crate) fn statement_seq(&self, id: &str) -> Result<Option<i64>, StoreError> {
        statements::seq_of(self.connection, id)
    }

    /// `statements::consistent_through`.
    pub(crate) fn consistent_through(
        &self,
        school_ids: &[i64],
        now: &str,
    ) -> Result<String, StoreError> {
        statements::consistent_through(self.connection, school_ids, now)
    }

    /// `statements::read_statement`.
    pub(crate) fn statement(
        &self,
        school_ids: &[i64],
        id: &str,
        voided: bool,
    ) -> Result<Option<StatementRow>, StoreError> {
        statements::read_statement(self.connection, school_ids, id, voided)
    }

    /// `statements::newest_statement`.
    pub(crate) fn newest_statement(
        &self,
        school_ids: &[i64],
    ) -> Result<Option<(i64, String)>, StoreError> {
        statements::newest_statement(self.connection, school_ids)
    }

    /// `statements::read_statements`.
    pub(crate) fn statements(
        &self,
        school_ids: &[i64],
        filter: &StatementFilter,
        after: Option<i64>,
        through: i64,
        limit: u32,
    ) -> Result<Vec<StatementRow>, StoreError> {
        statements::read_statements(self.connection, school_ids, filter, after, through, limit)
    }
}
