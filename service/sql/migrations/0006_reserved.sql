-- Reserved for the import helper's schema change (issue 14); empty so that the numbers have no gap.
SELECT 1;
