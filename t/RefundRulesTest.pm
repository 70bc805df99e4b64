# t/RefundRulesTest.pm - what the TAP tests of refund_rules share.
#
#   use FindBin; use lib $FindBin::RealBin; use RefundRulesTest;
#
#   rr_node(NAME, [CONF])        a started PostgreSQL::Test::Cluster node (UTF8, C
#                                locale, Unix socket only) with the extension
#                                available: the installed one, or under DESTDIR
#                                during a package build (dh_pgxs_test)
#   enforcement_trigger(%t)      the DDL of the enforcement trigger: THE ONE
#                                PLACE it is written (see below)
#   sql_error($node, $db, $sql)  run $sql; returns (SQLSTATE, message) of its
#                                first error, or ('', '') when it succeeded
#   expect_error($node, $db, $sqlstate, $label, $sql)   one check
#   expect_ok($node, $db, $label, $sql)                 one check
#
# PostgreSQL refuses to run as root: run as root (a package build as root),
# the tests skip, and say so.
package RefundRulesTest;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(rr_node enforcement_trigger sql_error expect_error expect_ok);

plan skip_all => 'PostgreSQL cannot run as root: run the TAP tests as another user'
  if $> == 0;

sub rr_node
{
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
	# A package build tests the files it is about to ship (as pg_virtualenv
	# -p does for pg_regress): extension_destdir is Debian's own setting.
	if ($ENV{DESTDIR} && -d "$ENV{DESTDIR}/usr/share/postgresql")
	{
		my $libdir = $node->config_data('--pkglibdir');
		$node->append_conf('postgresql.conf',
			"extension_destdir = '$ENV{DESTDIR}'\n"
			  . "dynamic_library_path = '$ENV{DESTDIR}$libdir:\$libdir'\n");
	}
	$node->append_conf('postgresql.conf', "fsync = off\n" . ($conf // ''));
	$node->start;
	return $node;
}

# ---------------------------------------------------------------------------
# THE ENFORCEMENT TRIGGER'S DDL: every TAP test that creates one calls this.
# 1.2 on: an AFTER INSERT OR UPDATE ... FOR EACH ROW trigger, bound by the
# request table's foreign key on the column; its arguments are the purchases
# table, the request's key column and (optionally) the purchases table's key
# column.  Before 1.2 (version => '1.0' or '1.1'): the same, BEFORE.
#   name      trigger name
#   table     the request table
#   purchases the purchases table, as the arguments name it
#   column    the request's column that references the purchase
#   key       (optional) the purchases table's key column
#   version   (optional) the release whose declaration to use; default current
sub enforcement_trigger
{
	my (%t) = @_;
	my $args = join ', ', map { "'$_'" } grep { defined } @t{qw(purchases column key)};
	my $timing = (defined $t{version} && $t{version} lt '1.2') ? 'BEFORE' : 'AFTER';
	return <<"SQL";
CREATE TRIGGER $t{name}
  $timing INSERT OR UPDATE ON $t{table}
  FOR EACH ROW EXECUTE FUNCTION refund_rules.enforce_refund_policy($args);
SQL
}
# ---------------------------------------------------------------------------

sub sql_error
{
	my ($node, $db, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql(
		$db, $sql,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		extra_params => [ '-v', 'VERBOSITY=verbose', '-v', 'SHOW_CONTEXT=never' ]);
	return ('', '') if $rc == 0 && $err !~ /ERROR:/;
	return ($1, $2) if $err =~ /ERROR:  ([0-9A-Z]{5}): ([^\n]*)/;
	return ('none', $err);
}

sub expect_error
{
	my ($node, $db, $want, $label, $sql) = @_;
	my ($got, $msg) = sql_error($node, $db, $sql);
	is($got, $want, "$label: refused with $want")
	  or diag("message: $msg");
}

sub expect_ok
{
	my ($node, $db, $label, $sql) = @_;
	my ($got, $msg) = sql_error($node, $db, $sql);
	is($got, '', $label) or diag("$got: $msg");
}

1;
