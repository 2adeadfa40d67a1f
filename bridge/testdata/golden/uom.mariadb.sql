create table `tabUOM` (
	`name` varchar(140) primary key,
	`creation` datetime(6),
	`modified` datetime(6),
	`modified_by` varchar(140),
	`owner` varchar(140),
	`docstatus` int(1) not null default '0',
	`idx` int(8) not null default '0',
	`enabled` int(1) not null default 1,
	`uom_name` varchar(140) unique,
	`must_be_whole_number` int(1) not null default 0,
	`_user_tags` text,
	`_comments` text,
	`_assign` text,
	`_liked_by` text,
	index `modified`(`modified`)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC CHARACTER SET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
