create table "tabItem Barcode" (
	"name" varchar(140) primary key,
	"creation" timestamp(6),
	"modified" timestamp(6),
	"modified_by" varchar(140),
	"owner" varchar(140),
	"docstatus" smallint not null default '0',
	"idx" bigint not null default '0',
	"barcode" varchar(140) unique,
	"barcode_type" varchar(140),
	"uom" varchar(140),
	"parent" varchar(140),
	"parentfield" varchar(140),
	"parenttype" varchar(140)
);
