create table "tabItem Group" (
	"name" varchar(140) primary key,
	"creation" timestamp(6),
	"modified" timestamp(6),
	"modified_by" varchar(140),
	"owner" varchar(140),
	"docstatus" smallint not null default '0',
	"idx" bigint not null default '0',
	"item_group_name" varchar(140) unique,
	"parent_item_group" varchar(140),
	"is_group" smallint not null default 0,
	"image" text,
	"lft" bigint not null default 0,
	"old_parent" varchar(140),
	"rgt" bigint not null default 0,
	"_user_tags" text,
	"_comments" text,
	"_assign" text,
	"_liked_by" text
);
create index if not exists "lft" on "tabItem Group" ("lft");
create index if not exists "rgt" on "tabItem Group" ("rgt");
