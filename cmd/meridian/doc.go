// Command meridian is a Meridian site: `meridian node` runs it, and every
// other command is a client of the running node's admin API (found through
// the data directory's api.addr and api.token), except those that work on
// files alone: init, id, authority init and the signing commands with
// --out, simulate, debug. See README.md for every command.
package main
