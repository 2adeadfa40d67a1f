create table "tabUOM" (
	"name" varchar(140) primary key,
	"creation" timestamp(6),
	"modified" timestamp(6),
	"modified_by" varchar(140),
	"owner" varchar(140),
	"docstatus" smallint not null default '0',
	"idx" bigint not null default '0',
	"enabled" smallint not null default 1,
	"uom_name" varchar(140) unique,
	"must_be_whole_number" smallint not null default 0,
	"_user_tags" text,
	"_comments" text,
	"_assign" text,
	"_liked_by" text
);
