-- Nothing calls sw_message_search_text_links since 0145 (sw_message_search_text no longer falls
-- back to it), so it is dropped rather than kept in a repeatable file.
drop function sw_message_search_text_links(text);
