create table `tabItem Barcode` (
	`name` varchar(140) primary key,
	`creation` datetime(6),
	`modified` datetime(6),
	`modified_by` varchar(140),
	`owner` varchar(140),
	`docstatus` int(1) not null default '0',
	`idx` int(8) not null default '0',
	`barcode` varchar(140) unique,
	`barcode_type` varchar(140),
	`uom` varchar(140),
	`parent` varchar(140),
	`parentfield` varchar(140),
	`parenttype` varchar(140),
	index `parent`(`parent`)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC CHARACTER SET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
